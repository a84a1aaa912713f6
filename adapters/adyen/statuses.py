"""Adyen's result codes and notification event codes in the router's
vocabulary: the one map of them, for the live path and the webhooks alike."""

from __future__ import annotations

from adapters.base import Operation, ResultStatus

A, D, P = ResultStatus.APPROVED, ResultStatus.DECLINED, ResultStatus.PENDING

#: resultCode -> result (PaymentResponse.resultCode in Checkout v71)
RESULT_CODES: dict[str, ResultStatus] = {
    "Authorised": A,
    "Success": A,
    "Refused": D,
    "Cancelled": D,
    "Error": D,  # final: the payment failed during processing
    "PartiallyAuthorised": D,  # we never ask for partial authorisations
    "Pending": P,
    "Received": P,
    "RedirectShopper": P,
    "ChallengeShopper": P,
    "IdentifyShopper": P,
    "PresentToShopper": P,
    "AuthenticationFinished": P,
    "AuthenticationNotRequired": P,
}

#: eventCode -> (is a refund, operation it settles, fixed result or None: success decides)
EVENT_CODES: dict[str, tuple[bool, Operation | None, ResultStatus | None]] = {
    "AUTHORISATION": (False, Operation.AUTHORIZE, None),
    "CAPTURE": (False, Operation.CAPTURE, None),
    "CAPTURE_FAILED": (False, Operation.CAPTURE, D),
    "CANCELLATION": (False, Operation.VOID, None),
    "REFUND": (True, Operation.REFUND, None),
    "REFUND_FAILED": (True, Operation.REFUND, D),
}
