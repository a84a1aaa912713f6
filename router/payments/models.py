"""The public API's request and response shapes (pydantic v2, extra=forbid).

Requests are strict: an amount is a whole number in minor units (``1000`` or
``1000.0``, never ``"1000"`` or ``1000.5``); unknown fields are refused so a
typo cannot silently do nothing.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)

from router.ledger.protocol import CURSOR_PATTERN
from router.payments import money
from router.payments.records import (
    AttemptOutcome,
    DeclineInfo,
    PaymentRecord,
    RefundRecord,
    Source,
)
from router.payments.states import OperationState, PaymentState


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _whole_number(value: Any) -> Any:
    """JSON has one number type: ``1000.0`` is the integer 1000 to JSON Schema,
    so it is to us too.  A fraction, a string or a boolean is still refused
    (StrictInt), and every allowed amount is exact in a double (< 2**53)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= money.MAX_AMOUNT:
        return int(value)
    return value


Amount = Annotated[
    StrictInt,
    Field(gt=0, le=money.MAX_AMOUNT, description="minor units"),
    BeforeValidator(_whole_number),  # last: it runs first, before the strict check
]
Currency = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        description="active ISO 4217 code",
        json_schema_extra={"enum": sorted(money.EXPONENTS)},
    ),
]
Token = Annotated[
    str,
    Field(
        min_length=4,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.:]*$",
        description="a token an acquirer issued; raw card numbers are refused",
    ),
]
#: an acquirer's name in the config, or an acquirer kind (stripe, adyen, ...)
AcquirerKey = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]


class AcquirerTokens(Strict):
    """Tokens acquirers issued, each usable only where it was issued: keyed by
    acquirer name, or by kind for every acquirer of that kind."""

    type: Literal["acquirer_tokens"]
    tokens: Annotated[
        dict[AcquirerKey, Token],
        # keys outside the pattern are refused, so the document says so too
        Field(min_length=1, max_length=10, json_schema_extra={"additionalProperties": False}),
    ]


class VaultToken(Strict):
    """A card held by a vault; the acquirer request is forwarded through the
    vault, which fills in the card on the way (payrouter never sees it)."""

    type: Literal["vault"]
    vault: AcquirerKey = Field(description="a vault in the config's vaults section")
    token: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.]{3,127}$")]


class NetworkTokenMethod(Strict):
    """A card scheme's token with its cryptogram; every acquirer that takes
    network tokens can use it.  ``number`` is the only field where a card-like
    number is accepted, and it is never stored or logged."""

    type: Literal["network_token"]
    number: Annotated[str, Field(pattern=r"^[0-9]{13,19}$")]
    expiry_month: Annotated[StrictInt, Field(ge=1, le=12), BeforeValidator(_whole_number)]
    expiry_year: Annotated[StrictInt, Field(ge=2000, le=2099), BeforeValidator(_whole_number)]
    scheme: Literal["visa", "mastercard", "amex", "discover", "jcb", "unionpay"]
    cryptogram: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9+/=]+$")] | None = None
    eci: Annotated[str, Field(pattern=r"^[0-9]{2}$")] | None = None


PaymentMethod = Annotated[
    AcquirerTokens | VaultToken | NetworkTokenMethod, Field(discriminator="type")
]


class StoredCredentialIn(Strict):
    """Card on file: who starts the payment, and which use of the stored card
    this is.  A merchant-initiated payment at any acquirer needs the scheme's
    id of the first payment: give it, or give the first payment's id."""

    initiator: Literal["customer", "merchant"]
    usage: Literal["first", "subsequent"]
    sequence: Literal["recurring", "unscheduled", "installment"] | None = None
    network_transaction_id: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")] | None
    ) = None
    initial_payment_id: Annotated[str, Field(pattern=r"^pay_[0-9a-f]{24}$")] | None = None


Reference = Annotated[str, Field(min_length=1, max_length=128)]
Metadata = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, Field(max_length=500)]],
    Field(max_length=20),
]


class RoutingHints(Strict):
    acquirer: str | None = Field(None, description="preferred acquirer, tried first")
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    card_brand: (
        Literal["visa", "mastercard", "amex", "discover", "jcb", "unionpay", "other"] | None
    ) = None
    bin: Annotated[str, Field(pattern=r"^[0-9]{6,8}$")] | None = None


class CreatePayment(Strict):
    amount: Amount
    currency: Currency
    payment_method: Token | PaymentMethod = Field(
        description="a payment method object, or a plain string: a sandbox test token "
        "(short for {type: acquirer_tokens, tokens: {sandbox: ...}})"
    )
    capture: StrictBool = Field(True, description="true: sale; false: authorize only")
    merchant_reference: Reference | None = None
    metadata: Metadata = Field(default_factory=dict)
    routing: RoutingHints | None = None
    shopper_reference: Annotated[str, Field(min_length=3, max_length=256)] | None = Field(
        None, description="your id of the shopper; stored cards belong to it"
    )
    stored_credential: StoredCredentialIn | None = None
    return_url: Annotated[str, Field(max_length=1024, pattern=r"^https?://")] | None = Field(
        None, description="where the shopper comes back after 3-D Secure or a redirect"
    )

    @functools.cached_property
    def method(self) -> AcquirerTokens | VaultToken | NetworkTokenMethod:
        """The payment method object (a plain string is a sandbox test token).
        Kept once made: eligibility, routing and the record all ask for it."""
        if isinstance(self.payment_method, str):
            return AcquirerTokens(type="acquirer_tokens", tokens={"sandbox": self.payment_method})
        return self.payment_method

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in money.EXPONENTS:  # the input is not echoed: it is the caller's
            raise ValueError("not an active ISO 4217 currency")
        return value


class CapturePayment(Strict):
    amount: Amount | None = Field(None, description="omit to capture the full authorization")


class VoidPayment(Strict):
    pass


class AuthenticatePayment(Strict):
    """What came back with the shopper from the acquirer's page (for Adyen,
    the ``redirectResult`` of the return URL); empty for acquirers whose
    result is read from the payment itself."""

    details: Annotated[
        dict[
            Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,63}$")],
            # ASCII, as return URLs carry them; 10 x 4 KB stays under server.max_body_bytes
            Annotated[str, Field(max_length=4096, pattern=r"^[\x20-\x7e]*$")],
        ],
        Field(max_length=10, json_schema_extra={"additionalProperties": False}),
    ] = Field(default_factory=dict)


class CreateRefund(Strict):
    amount: Amount | None = Field(None, description="omit to refund what is left")
    reason: Annotated[str, Field(max_length=200)] | None = None
    merchant_reference: Reference | None = None


def iso_ms(ms: int) -> str:
    """``2026-11-25T13:15:24.123+00:00``; every answer has two, so the
    seconds are formatted once per second, not per call."""
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}+00:00"


@functools.lru_cache(maxsize=256)
def _iso_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class NextAction(BaseModel):
    """What the shopper must do: follow ``url`` with ``method`` (and ``data`` as
    form fields for a POST), or hand ``data`` to the acquirer's SDK."""

    type: Literal["redirect", "sdk"] = "redirect"
    url: str | None = None
    method: str = "GET"
    data: dict[str, Any] = Field(default_factory=dict)


class DeclineView(BaseModel):
    code: str = Field(description="normalized decline code, the same for every acquirer")
    raw_code: str = Field(description="the acquirer's own code")
    category: Literal["soft", "hard"]


class PaymentMethodView(BaseModel):
    """What the payment was paid with: never a number, never a whole token."""

    type: str = Field(description="acquirer_tokens | vault | network_token")
    hint: str = Field(description="enough to recognise it: a token's start, a token's last 4")
    acquirers: list[str] = Field(description="acquirer_tokens: where the tokens were issued")


class AttemptView(BaseModel):
    acquirer: str
    operation: str
    outcome: AttemptOutcome | None
    reason: str | None
    decline: DeclineView | None


class PaymentView(BaseModel):
    id: str
    status: PaymentState
    livemode: bool
    amount: int
    amount_decimal: str
    currency: str
    capture: bool
    payment_method: PaymentMethodView
    captured_amount: int
    refunded_amount: int
    acquirer: str | None
    acquirer_reference: str | None
    decline_code: str | None
    decline: DeclineView | None
    failure_reason: str | None
    pending_operation: str | None
    next_action: NextAction | None
    network_transaction_id: str | None
    attempts: list[AttemptView]
    merchant_reference: str | None
    metadata: dict[str, str]
    refunds: list[str]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, p: PaymentRecord) -> PaymentView:
        return cls.model_validate(payment_body(p))


def payment_body(p: PaymentRecord) -> dict[str, Any]:
    """The :class:`PaymentView` of a record as JSON-ready data, built directly:
    every answer carries one, and building the model only to dump it again
    cost about four times as much (measured: 40 against 9 us).  The view
    stays the schema (OpenAPI, reads); tests hold this function to it field
    for field."""
    decline = p.decline
    return {
        "id": p.id,
        "status": p.state.value,
        "livemode": p.livemode,
        "amount": p.amount,
        "amount_decimal": money.to_decimal(p.amount, p.currency),
        "currency": p.currency,
        "capture": p.capture,
        "payment_method": {
            "type": p.method.type,
            "hint": p.method.hint,
            "acquirers": list(p.method.acquirers),
        },
        "captured_amount": p.captured_amount,
        "refunded_amount": p.refunded_amount,
        "acquirer": p.acquirer,
        "acquirer_reference": p.acquirer_reference,
        "decline_code": decline.code.value if decline else None,
        "decline": _decline_body(decline),
        "failure_reason": p.failure_reason,
        "pending_operation": _pending(p),
        "next_action": (
            NextAction.model_validate(p.next_action).model_dump(mode="json")
            if p.next_action
            else None
        ),
        "network_transaction_id": p.network_transaction_id,
        "attempts": [
            {
                "acquirer": a.acquirer,
                "operation": a.operation.value,
                "outcome": a.outcome.value if a.outcome is not None else None,
                "reason": a.reason,
                "decline": _decline_body(a.decline),
            }
            for a in p.attempts
        ],
        "merchant_reference": p.merchant_reference,
        "metadata": dict(p.metadata),
        "refunds": list(p.refund_ids),
        "created_at": iso_ms(p.created_ms),
        "updated_at": iso_ms(p.updated_ms),
    }


def _decline_body(decline: DeclineInfo | None) -> dict[str, str] | None:
    if decline is None:
        return None
    return {"code": decline.code.value, "raw_code": decline.raw, "category": decline.category.value}


def _pending(payment: PaymentRecord) -> str | None:
    op = payment.open_operation()
    return str(op.operation) if op else None


class RefundView(BaseModel):
    id: str
    payment_id: str
    status: OperationState
    amount: int
    currency: str
    acquirer: str
    acquirer_reference: str | None
    decline_code: str | None
    reason: str | None
    merchant_reference: str | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, r: RefundRecord) -> RefundView:
        return cls.model_validate(refund_body(r))


def refund_body(r: RefundRecord) -> dict[str, Any]:
    """The :class:`RefundView` of a record as JSON-ready data (see :func:`payment_body`)."""
    return {
        "id": r.id,
        "payment_id": r.payment_id,
        "status": r.state.value,
        "amount": r.amount,
        "currency": r.currency,
        "acquirer": r.acquirer,
        "acquirer_reference": r.acquirer_reference,
        "decline_code": r.decline.code.value if r.decline else None,
        "reason": r.reason,
        "merchant_reference": r.merchant_reference,
        "created_at": iso_ms(r.created_ms),
        "updated_at": iso_ms(r.updated_ms),
    }


class ProblemView(BaseModel):
    type: str
    title: str
    status: int
    code: str
    detail: str


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339(value: Any) -> Any:
    """A date-time as OpenAPI's ``format: date-time`` means it, nothing looser
    (pydantic alone would also take a number of seconds)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("give an RFC 3339 date-time, e.g. 2026-11-01T00:00:00Z")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class ListPayments(Strict):
    """Query of ``GET /v1/payments``: every filter optional, newest first."""

    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")  # lookahead

    merchant_reference: Reference | None = None
    status: list[PaymentState] = Field(
        default_factory=list, max_length=11, description="any of these (repeat the parameter)"
    )
    acquirer: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")] | None = None
    created_from: Moment | None = Field(None, description="inclusive, RFC 3339 date-time")
    created_to: Moment | None = Field(None, description="exclusive, RFC 3339 date-time")
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, Field(pattern=CURSOR_PATTERN)] | None = Field(
        None, description="next_cursor of the previous page"
    )


class PaymentList(BaseModel):
    data: list[PaymentView]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: no more")


class EventView(BaseModel):
    """One version of the payment or of one of its refunds."""

    object: Literal["payment", "refund"]
    id: str
    version: int
    status: str
    previous_status: str | None
    source: Source
    at: str


class EventList(BaseModel):
    data: list[EventView]
