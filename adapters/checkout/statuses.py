"""Checkout.com's payment statuses, action types and webhook event types in
the router's vocabulary: the one map of them."""

from __future__ import annotations

from adapters.base import Operation, ResultStatus

A, D, P = ResultStatus.APPROVED, ResultStatus.DECLINED, ResultStatus.PENDING

#: payment status (of the create's answer, or of GET /payments/{id} later) ->
#: result of the create: a payment voided or refunded since was approved first
STATUS_MAP: dict[str, ResultStatus] = {
    "Authorized": A,
    "Captured": A,
    "Paid": A,
    "Card Verified": A,
    "Partially Captured": A,
    "Voided": A,
    "Refunded": A,
    "Partially Refunded": A,
    "Declined": D,
    "Canceled": D,
    "Expired": D,
    "Pending": P,
}

#: statuses whose funds are captured (of those approved)
CAPTURED = frozenset({"Captured", "Paid", "Partially Captured", "Refunded", "Partially Refunded"})

#: action type in GET /payments/{id}/actions -> our operation
ACTION_TYPES = {"Capture": Operation.CAPTURE, "Void": Operation.VOID, "Refund": Operation.REFUND}

#: webhook type -> (is a refund, operation it settles, result)
EVENT_TYPES: dict[str, tuple[bool, Operation, ResultStatus]] = {
    "payment_approved": (False, Operation.AUTHORIZE, A),
    "payment_pending": (False, Operation.AUTHORIZE, P),
    "payment_declined": (False, Operation.AUTHORIZE, D),
    "payment_captured": (False, Operation.CAPTURE, A),
    "payment_capture_declined": (False, Operation.CAPTURE, D),
    "payment_voided": (False, Operation.VOID, A),
    "payment_void_declined": (False, Operation.VOID, D),
    "payment_refunded": (True, Operation.REFUND, A),
    "payment_refund_declined": (True, Operation.REFUND, D),
}
