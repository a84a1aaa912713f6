"""One decline vocabulary for every acquirer.

Each acquirer speaks its own dialect (Stripe ``insufficient_funds``, Adyen
refusal reason code ``"2"``, Checkout.com response code ``"20051"``).  Each
connector maps its raw codes into :class:`DeclineCode`; the raw code travels
beside the normalized one, so nothing is lost for support, and routing
decides soft-decline retries on the normalized code or its category.

A *soft* decline may succeed elsewhere or later (the issuer was unavailable,
a limit was hit); a *hard* one will not (the card is expired, stolen, or the
credential is unknown to that acquirer).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from adapters.values import frozen


class DeclineCategory(enum.StrEnum):
    SOFT = "soft"
    HARD = "hard"


class DeclineCode(enum.StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    DO_NOT_HONOR = "do_not_honor"
    EXPIRED_CARD = "expired_card"
    INCORRECT_CVC = "incorrect_cvc"
    INVALID_CARD = "invalid_card"
    INVALID_CREDENTIAL = "invalid_credential"  # the token / credential is unknown there
    LOST_OR_STOLEN = "lost_or_stolen"
    FRAUD_SUSPECTED = "fraud_suspected"
    RESTRICTED_CARD = "restricted_card"
    NOT_PERMITTED = "not_permitted"  # transaction type not allowed for the card
    CARD_NOT_SUPPORTED = "card_not_supported"
    CURRENCY_NOT_SUPPORTED = "currency_not_supported"
    LIMIT_EXCEEDED = "limit_exceeded"
    TRY_AGAIN_LATER = "try_again_later"
    ISSUER_UNAVAILABLE = "issuer_unavailable"
    AUTHENTICATION_REQUIRED = "authentication_required"
    AUTHENTICATION_FAILED = "authentication_failed"
    AUTHENTICATION_EXPIRED = "authentication_expired"
    CANCELLED = "cancelled"
    OPERATION_REFUSED = "operation_refused"  # a capture/void/refund refused for that payment
    PROCESSING_ERROR = "processing_error"
    GENERIC = "card_declined"


_SOFT = frozenset(
    {
        DeclineCode.INSUFFICIENT_FUNDS,
        DeclineCode.LIMIT_EXCEEDED,
        DeclineCode.TRY_AGAIN_LATER,
        DeclineCode.ISSUER_UNAVAILABLE,
        DeclineCode.AUTHENTICATION_REQUIRED,
        DeclineCode.PROCESSING_ERROR,
        DeclineCode.INVALID_CREDENTIAL,  # another acquirer may know a credential this one does not
    }
)


def category_of(code: DeclineCode) -> DeclineCategory:
    return DeclineCategory.SOFT if code in _SOFT else DeclineCategory.HARD


@frozen
class Decline:
    """A normalized decline with the acquirer's own words beside it."""

    code: DeclineCode
    raw: str

    @property
    def category(self) -> DeclineCategory:
        return category_of(self.code)


def normalize(
    raw: str | None, table: Mapping[str, DeclineCode], default: DeclineCode = DeclineCode.GENERIC
) -> Decline:
    """Map one raw code through a connector's table; unknown codes are kept raw."""
    text = (raw or "").strip() or default.value
    code = table.get(text) or table.get(text.lower())
    if code is None:
        try:
            code = DeclineCode(text.lower())
        except ValueError:
            code = default
    return Decline(code, text)
