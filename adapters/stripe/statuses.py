"""Stripe's statuses in the router's vocabulary: the one map of them, read by
the live path, the status queries and the webhooks alike."""

from __future__ import annotations

from adapters.base import Operation, ResultStatus

A, D, P = ResultStatus.APPROVED, ResultStatus.DECLINED, ResultStatus.PENDING

#: PaymentIntent / Refund status -> result, per operation
STATUS_MAP: dict[Operation, dict[str, ResultStatus]] = {
    Operation.AUTHORIZE: {
        "requires_capture": A,
        "succeeded": A,
        "processing": P,
        "requires_action": P,
        "requires_confirmation": P,
        "requires_payment_method": D,
        "canceled": D,
    },
    Operation.SALE: {
        "succeeded": A,
        "processing": P,
        "requires_action": P,
        "requires_confirmation": P,
        "requires_capture": P,
        "requires_payment_method": D,
        "canceled": D,
    },
    # after a capture (or asked about one): anything but succeeded or processing
    # means the capture did not happen
    Operation.CAPTURE: {
        "succeeded": A,
        "processing": P,
        "requires_capture": D,
        "canceled": D,
        "requires_action": D,
        "requires_confirmation": D,
        "requires_payment_method": D,
    },
    # after a cancel: canceled is the void; any other final status says it did not happen
    Operation.VOID: {
        "canceled": A,
        "processing": P,
        "succeeded": D,
        "requires_capture": D,
        "requires_action": D,
        "requires_confirmation": D,
        "requires_payment_method": D,
    },
    Operation.REFUND: {
        "succeeded": A,
        "pending": P,
        "requires_action": P,
        "failed": D,
        "canceled": D,
    },
}

#: PaymentIntent event type -> (operation it settles, result); None: the create
#: or whichever capture is open
INTENT_EVENTS: dict[str, tuple[Operation | None, ResultStatus]] = {
    "payment_intent.amount_capturable_updated": (Operation.AUTHORIZE, A),
    "payment_intent.succeeded": (None, A),
    "payment_intent.payment_failed": (Operation.AUTHORIZE, D),
    "payment_intent.canceled": (Operation.VOID, A),
    "payment_intent.processing": (Operation.AUTHORIZE, P),
    "payment_intent.requires_action": (Operation.AUTHORIZE, P),
}
