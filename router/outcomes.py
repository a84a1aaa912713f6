"""Applying an acquirer's answer to our records.

Every function here is idempotent: the same answer may arrive from the live
call, from a replay after a crash, from the reconciler and from a webhook, in
any order, and must leave the records exactly as one arrival would.  Each
returns the changed record, or None when there is nothing to change.
"""

from __future__ import annotations

from adapters.base import AcquirerResult, ResultStatus
from router.records import OpLock, PaymentRecord, RefundRecord, now_ms
from router.states import PaymentState, RefundState, can_transition

S = PaymentState

UNRESOLVED = frozenset({S.PENDING, S.UNKNOWN})


def _created_state(payment: PaymentRecord, result: AcquirerResult) -> PaymentState:
    if result.status is ResultStatus.APPROVED:
        return S.CAPTURED if payment.capture else S.AUTHORIZED
    if result.status is ResultStatus.DECLINED:
        return S.DECLINED
    return S.PENDING


def apply_create(
    payment: PaymentRecord, acquirer: str, acquirer_key: str, result: AcquirerResult
) -> PaymentRecord | None:
    target = _created_state(payment, result)
    if payment.state not in UNRESOLVED | {S.FAILED} or not can_transition(payment.state, target):
        return None  # already final (or moved on, e.g. captured since): never go back
    if payment.state is target and payment.acquirer == acquirer and target is not S.PENDING:
        return None
    payment.state = target
    payment.acquirer = acquirer
    payment.acquirer_key = acquirer_key
    payment.acquirer_reference = result.acquirer_reference or payment.acquirer_reference
    payment.decline_code = result.decline_code if target is S.DECLINED else None
    payment.redirect_url = result.redirect_url if target is S.PENDING else None
    payment.failure_reason = None
    if target is S.CAPTURED:
        payment.captured_amount = payment.amount
    payment.updated_ms = now_ms()
    return payment


def mark_unknown(payment: PaymentRecord, acquirer: str, acquirer_key: str) -> PaymentRecord | None:
    if payment.state not in (S.PENDING, S.FAILED):
        return None
    payment.state = S.UNKNOWN
    payment.acquirer, payment.acquirer_key = acquirer, acquirer_key
    payment.updated_ms = now_ms()
    return payment


def mark_failed(payment: PaymentRecord, reason: str) -> PaymentRecord | None:
    if payment.state is not S.PENDING:
        return None
    payment.state = S.FAILED
    payment.failure_reason = reason
    payment.updated_ms = now_ms()
    return payment


def confirm_not_processed(payment: PaymentRecord) -> PaymentRecord | None:
    """The acquirer authoritatively never received the request (reconciler only)."""
    if payment.state is not S.UNKNOWN:
        return None
    payment.state = S.FAILED
    payment.failure_reason = "acquirer_confirms_not_processed"
    payment.updated_ms = now_ms()
    return payment


def restart(payment: PaymentRecord) -> PaymentRecord | None:
    """A retry after a failure under which nothing was processed anywhere."""
    if payment.state is not S.FAILED:
        return None
    payment.state, payment.failure_reason = S.PENDING, None
    payment.updated_ms = now_ms()
    return payment


def apply_locked_operation(
    payment: PaymentRecord, lock: OpLock, result: AcquirerResult
) -> PaymentRecord | None:
    """Finish a capture or void that held the payment's operation lock."""
    if payment.op_lock is None or payment.op_lock.scope != lock.scope:
        return None  # already applied
    payment.op_lock = None
    payment.updated_ms = now_ms()
    if result.status is ResultStatus.APPROVED:
        if lock.operation == "capture":
            payment.state = S.CAPTURED
            payment.captured_amount = lock.amount
        else:
            payment.state = S.VOIDED
    elif result.status is ResultStatus.PENDING:
        payment.op_lock = lock  # keep holding: the answer comes later
    return payment


def unlock(payment: PaymentRecord, scope: str) -> PaymentRecord | None:
    if payment.op_lock is None or payment.op_lock.scope != scope:
        return None
    payment.op_lock = None
    payment.updated_ms = now_ms()
    return payment


def settle_refund_on_payment(
    payment: PaymentRecord, refund_id: str, succeeded: bool
) -> PaymentRecord | None:
    amount = payment.refund_holds.pop(refund_id, None)
    if amount is None:
        return None  # already settled
    if succeeded:
        payment.refunded_amount += amount
        payment.state = (
            S.REFUNDED
            if payment.refunded_amount >= payment.captured_amount
            else S.PARTIALLY_REFUNDED
        )
    payment.updated_ms = now_ms()
    return payment


REFUND_STATE = {
    ResultStatus.APPROVED: RefundState.SUCCEEDED,
    ResultStatus.DECLINED: RefundState.DECLINED,
    ResultStatus.PENDING: RefundState.PENDING,
}


def apply_refund(refund: RefundRecord, result: AcquirerResult) -> RefundRecord | None:
    target = REFUND_STATE[result.status]
    if refund.state not in (RefundState.PENDING, RefundState.UNKNOWN) or refund.state is target:
        return None
    refund.state = target
    refund.acquirer_reference = result.acquirer_reference or refund.acquirer_reference
    refund.decline_code = result.decline_code
    refund.updated_ms = now_ms()
    return refund
