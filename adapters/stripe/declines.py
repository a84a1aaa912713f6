"""Stripe decline codes (``decline_code``, else the error ``code``) in the
normalized vocabulary."""

from __future__ import annotations

from adapters.declines import DeclineCode as C

DECLINES: dict[str, C] = {
    "insufficient_funds": C.INSUFFICIENT_FUNDS,
    "do_not_honor": C.DO_NOT_HONOR,
    "generic_decline": C.GENERIC,
    "card_declined": C.GENERIC,
    "expired_card": C.EXPIRED_CARD,
    "incorrect_cvc": C.INCORRECT_CVC,
    "invalid_cvc": C.INCORRECT_CVC,
    "incorrect_number": C.INVALID_CARD,
    "invalid_number": C.INVALID_CARD,
    "invalid_account": C.INVALID_CARD,
    "lost_card": C.LOST_OR_STOLEN,
    "stolen_card": C.LOST_OR_STOLEN,
    "pickup_card": C.LOST_OR_STOLEN,
    "fraudulent": C.FRAUD_SUSPECTED,
    "merchant_blacklist": C.FRAUD_SUSPECTED,
    "restricted_card": C.RESTRICTED_CARD,
    "transaction_not_allowed": C.NOT_PERMITTED,
    "card_not_supported": C.CARD_NOT_SUPPORTED,
    "currency_not_supported": C.CURRENCY_NOT_SUPPORTED,
    "card_velocity_exceeded": C.LIMIT_EXCEEDED,
    "withdrawal_count_limit_exceeded": C.LIMIT_EXCEEDED,
    "try_again_later": C.TRY_AGAIN_LATER,
    "issuer_not_available": C.ISSUER_UNAVAILABLE,
    "processing_error": C.PROCESSING_ERROR,
    "authentication_required": C.AUTHENTICATION_REQUIRED,
    "payment_intent_authentication_failure": C.AUTHENTICATION_FAILED,
    "resource_missing": C.INVALID_CREDENTIAL,
    "payment_method_unactivated": C.INVALID_CREDENTIAL,
}
