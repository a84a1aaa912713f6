"""Checkout.com response codes in the normalized vocabulary (2xxxx soft and
3xxxx/4xxxx hard declines; 10000/10008/10011 approved)."""

from __future__ import annotations

from adapters.declines import DeclineCode as C

DECLINES: dict[str, C] = {
    "20001": C.DO_NOT_HONOR,  # Refer to card issuer
    "20005": C.DO_NOT_HONOR,  # Declined - Do not honour
    "20012": C.NOT_PERMITTED,  # Invalid transaction
    "20013": C.GENERIC,  # Invalid value/amount
    "20014": C.INVALID_CARD,  # Invalid account number (no such number)
    "20046": C.CANCELLED,
    "20051": C.INSUFFICIENT_FUNDS,
    "20054": C.EXPIRED_CARD,
    "20055": C.INCORRECT_CVC,  # Incorrect PIN
    "20057": C.NOT_PERMITTED,  # Transaction not permitted to cardholder
    "20059": C.FRAUD_SUSPECTED,
    "20061": C.LIMIT_EXCEEDED,  # Activity amount limit exceeded
    "20062": C.RESTRICTED_CARD,
    "20065": C.LIMIT_EXCEEDED,  # Activity count limit exceeded
    "20082": C.INCORRECT_CVC,
    "20087": C.INCORRECT_CVC,  # Bad track data
    "20091": C.ISSUER_UNAVAILABLE,
    "20096": C.PROCESSING_ERROR,  # System malfunction
    "20150": C.AUTHENTICATION_FAILED,  # Card not 3D Secure enabled
    "20151": C.AUTHENTICATION_FAILED,
    "20152": C.AUTHENTICATION_FAILED,
    "20153": C.AUTHENTICATION_FAILED,
    "20154": C.AUTHENTICATION_REQUIRED,
    "30004": C.LOST_OR_STOLEN,  # Pick up card
    "30007": C.LOST_OR_STOLEN,
    "30015": C.INVALID_CARD,  # No such issuer
    "30041": C.LOST_OR_STOLEN,
    "30043": C.LOST_OR_STOLEN,
    "40101": C.FRAUD_SUSPECTED,  # Risk blocked transaction
    "40201": C.FRAUD_SUSPECTED,
    "200R1": C.TRY_AGAIN_LATER,
}
