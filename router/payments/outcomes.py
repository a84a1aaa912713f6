"""Applying an acquirer's answer (or its absence) to our records.

Every function here changes records in place, moves states only through
:mod:`router.payments.states`, and is idempotent: the same answer may arrive
from the live call, a retry resolving it, the reconciler and a webhook, in
any order, and leaves the records as one arrival would.  Each returns True
when it changed something.
"""

from __future__ import annotations

from adapters.base import AcquirerResult, Operation, ResultStatus
from router.payments.records import (
    Attempt,
    AttemptOutcome,
    DeclineInfo,
    OperationRecord,
    PaymentRecord,
    RefundRecord,
)
from router.payments.states import (
    OperationState,
    PaymentState,
    move,
    move_operation,
)

S, OS = PaymentState, OperationState

_OUTCOME_OF = {
    ResultStatus.APPROVED: AttemptOutcome.APPROVED,
    ResultStatus.DECLINED: AttemptOutcome.DECLINED,
    ResultStatus.PENDING: AttemptOutcome.PENDING,
}
_OPERATION_STATE_OF = {
    ResultStatus.APPROVED: OS.SUCCEEDED,
    ResultStatus.DECLINED: OS.DECLINED,
    ResultStatus.PENDING: OS.PENDING,
}


def settled(attempt: Attempt, result: AcquirerResult) -> Attempt:
    return attempt.model_copy(
        update={
            "outcome": _OUTCOME_OF[result.status],
            "acquirer_reference": result.acquirer_reference or attempt.acquirer_reference,
            "decline": DeclineInfo.of(result.decline) if result.decline else None,
        }
    )


def closed(attempt: Attempt, outcome: AttemptOutcome, reason: str) -> Attempt:
    return attempt.model_copy(update={"outcome": outcome, "reason": reason})


def _replace(attempts: list[Attempt], index: int, new: Attempt) -> bool:
    if attempts[index] == new:
        return False
    attempts[index] = new
    return True


# ------------------------------------------------------------------- creates


def _created_state(payment: PaymentRecord, result: AcquirerResult) -> PaymentState:
    if result.status is ResultStatus.APPROVED:
        if not payment.capture:
            return S.AUTHORIZED
        return S.CAPTURED if result.captured is not False else S.CAPTURE_PENDING
    if result.status is ResultStatus.DECLINED:
        return S.DECLINED
    return S.PENDING


def journal(payment: PaymentRecord, attempt: Attempt) -> bool:
    """Write an attempt ahead of its call (unless it is the last line already)."""
    if payment.attempts and payment.attempts[-1] == attempt:
        return False
    payment.attempts.append(attempt)
    return True


def apply_create(payment: PaymentRecord, index: int, result: AcquirerResult) -> bool:
    """The create attempt at ``index`` answered ``result``."""
    attempt = settled(payment.attempts[index], result)
    changed = _replace(payment.attempts, index, attempt)
    if payment.state not in (S.PENDING, S.UNKNOWN, S.FAILED):
        return changed  # already answered: never go back
    target = _created_state(payment, result)
    if payment.state is S.FAILED:
        move(payment, S.PENDING)
    before = _answer_of(payment)
    move(payment, target)
    payment.acquirer = attempt.acquirer
    payment.acquirer_key = attempt.acquirer_key
    payment.acquirer_reference = attempt.acquirer_reference or payment.acquirer_reference
    payment.decline = attempt.decline if target is S.DECLINED else None
    payment.next_action = (
        _action(result) if target is S.PENDING and result.next_action is not None else None
    )
    payment.network_transaction_id = result.network_transaction_id or payment.network_transaction_id
    payment.failure_reason = None
    if target is S.CAPTURED:
        payment.captured_amount = payment.amount
    return changed or _answer_of(payment) != before


def _answer_of(payment: PaymentRecord) -> tuple[object, ...]:
    """The fields a create's answer sets (to tell a real change from a repeat)."""
    return (
        payment.state,
        payment.acquirer,
        payment.acquirer_key,
        payment.acquirer_reference,
        payment.decline,
        payment.next_action,
        payment.network_transaction_id,
        payment.failure_reason,
        payment.captured_amount,
    )


def _action(result: AcquirerResult) -> dict[str, object]:
    action = result.next_action
    assert action is not None
    return {"type": action.type, "url": action.url, "method": action.method, "data": action.data}


def note_soft_decline(payment: PaymentRecord, index: int, result: AcquirerResult) -> bool:
    """A decline worth another acquirer: journaled, the payment stays pending."""
    return _replace(payment.attempts, index, settled(payment.attempts[index], result))


def mark_unknown(payment: PaymentRecord, index: int, reason: str) -> bool:
    attempt = payment.attempts[index]
    changed = _replace(payment.attempts, index, closed(attempt, AttemptOutcome.UNKNOWN, reason))
    if payment.state not in (S.PENDING, S.FAILED):
        return changed
    if payment.state is S.FAILED:
        move(payment, S.PENDING)
    move(payment, S.UNKNOWN)
    payment.acquirer, payment.acquirer_key = attempt.acquirer, attempt.acquirer_key
    return True


def mark_not_processed(
    payment: PaymentRecord, index: int, outcome: AttemptOutcome, reason: str
) -> bool:
    return _replace(payment.attempts, index, closed(payment.attempts[index], outcome, reason))


def mark_failed(payment: PaymentRecord, reason: str) -> bool:
    """Nothing was processed anywhere (or our integration is wrong)."""
    if payment.state is not S.PENDING:
        return False
    move(payment, S.FAILED)
    payment.failure_reason = reason
    return True


def restart(payment: PaymentRecord) -> bool:
    """A retry after a failure under which nothing was processed anywhere."""
    if payment.state is not S.FAILED:
        return False
    move(payment, S.PENDING)
    payment.failure_reason = None
    return True


def confirm_not_processed(payment: PaymentRecord, reason: str) -> bool:
    """The acquirer authoritatively never received the request (reconciler only)."""
    found = payment.open_attempt()
    if payment.state is not S.UNKNOWN or found is None:
        return False
    index, attempt = found
    payment.attempts[index] = closed(attempt, AttemptOutcome.NOT_PROCESSED, reason)
    move(payment, S.FAILED)
    payment.failure_reason = reason
    return True


def apply_sale_capture(payment: PaymentRecord, result: AcquirerResult) -> bool:
    """The capture of a sale that was answered 'authorised' is confirmed or refused."""
    if payment.state is not S.CAPTURE_PENDING or result.status is ResultStatus.PENDING:
        return False
    if result.status is ResultStatus.APPROVED:
        move(payment, S.CAPTURED)
        payment.captured_amount = payment.amount
    else:
        move(payment, S.CAPTURE_FAILED)
        payment.decline = DeclineInfo.of(result.decline) if result.decline else None
    return True


# ------------------------------------------------------ captures and voids


def open_operation(payment: PaymentRecord, operation: OperationRecord) -> bool:
    """Journal a capture or void ahead of its call; it holds the payment."""
    if payment.operation(operation.id) is not None:
        return False
    payment.operations.append(operation)
    return True


def _op(payment: PaymentRecord, op_id: str) -> OperationRecord:
    op = payment.operation(op_id)
    assert op is not None, f"no operation {op_id} on {payment.id}"
    return op


def apply_operation(payment: PaymentRecord, op_id: str, result: AcquirerResult) -> bool:
    op = _op(payment, op_id)
    before = op.model_copy(deep=True), payment.state
    if op.unresolved:
        op.attempt = settled(op.attempt, result)
        move_operation(op, _OPERATION_STATE_OF[result.status])
        op.decline = op.attempt.decline
    if op.state is OS.SUCCEEDED and payment.state in (
        S.AUTHORIZED,
        S.CAPTURE_PENDING,
        S.CAPTURE_FAILED,
    ):
        if op.operation is Operation.CAPTURE:
            move(payment, S.CAPTURED)
            payment.captured_amount = op.amount
        else:
            move(payment, S.VOIDED)
    return (op, payment.state) != before


def mark_operation_unknown(payment: PaymentRecord, op_id: str, reason: str) -> bool:
    return _now_unknown(_op(payment, op_id), reason)


def _now_unknown(item: OperationRecord | RefundRecord, reason: str) -> bool:
    """A capture, void or refund whose answer is lost: unknown until resolved."""
    if not item.unresolved or item.attempt is None:
        return False
    before = item.model_copy(deep=True)
    item.attempt = closed(item.attempt, AttemptOutcome.UNKNOWN, reason)
    move_operation(item, OS.UNKNOWN)
    return item != before


def fail_operation(
    payment: PaymentRecord, op_id: str, outcome: AttemptOutcome, reason: str
) -> bool:
    """Provably not processed (or refused as our mistake): the lock is released."""
    op = _op(payment, op_id)
    if not op.unresolved:
        return False
    op.attempt = closed(op.attempt, outcome, reason)
    move_operation(op, OS.FAILED)
    return True


# ------------------------------------------------------------------- refunds


def hold_refund(payment: PaymentRecord, refund_id: str, amount: int) -> bool:
    """Reserve the amount before asking the acquirer, so concurrent refunds
    can never exceed what was captured."""
    if refund_id in payment.refund_holds:
        return False
    payment.refund_holds[refund_id] = amount
    if refund_id not in payment.refund_ids:
        payment.refund_ids.append(refund_id)
    return True


def _release_hold(payment: PaymentRecord, refund: RefundRecord) -> bool:
    amount = payment.refund_holds.pop(refund.id, None)
    if amount is None:
        return False
    if refund.state is OS.SUCCEEDED:
        payment.refunded_amount += amount
        move(
            payment,
            S.REFUNDED
            if payment.refunded_amount >= payment.captured_amount
            else S.PARTIALLY_REFUNDED,
        )
    return True


def apply_refund(refund: RefundRecord, payment: PaymentRecord, result: AcquirerResult) -> bool:
    changed = False
    if refund.unresolved and refund.attempt is not None:
        before = refund.model_copy(deep=True)
        refund.attempt = settled(refund.attempt, result)
        move_operation(refund, _OPERATION_STATE_OF[result.status])
        refund.acquirer_reference = result.acquirer_reference or refund.acquirer_reference
        refund.decline = refund.attempt.decline
        changed = refund != before
    if refund.state in (OS.SUCCEEDED, OS.DECLINED):
        changed = _release_hold(payment, refund) or changed
    return changed


def mark_refund_unknown(refund: RefundRecord, reason: str) -> bool:
    return _now_unknown(refund, reason)


def fail_refund(
    refund: RefundRecord, payment: PaymentRecord, outcome: AttemptOutcome, reason: str
) -> bool:
    """Not processed: the amount goes back to the payment."""
    if not refund.unresolved or refund.attempt is None:
        return False
    refund.attempt = closed(refund.attempt, outcome, reason)
    move_operation(refund, OS.FAILED)
    _release_hold(payment, refund)
    return True


def restart_refund(refund: RefundRecord, payment: PaymentRecord, attempt: Attempt) -> bool:
    """A retry of a refund that provably never ran: hold the amount again."""
    if refund.state is not OS.FAILED:
        return False
    move_operation(refund, OS.PENDING)
    refund.attempt = attempt
    hold_refund(payment, refund.id, refund.amount)
    return True
