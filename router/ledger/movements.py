"""Money movements, read off a record: what finance reconciles against the
acquirers' settlement reports.

Every version of a record yields every movement it shows so far (an
authorized-then-captured payment shows its authorization and its capture),
each under a key of its own; the ledger adds each key once and keeps the
earliest time it was seen.  So versions may arrive late, twice or out of
order and the movements come out the same.
"""

from __future__ import annotations

from adapters.base import Operation
from router.ledger.protocol import Movement, MovementKind
from router.payments.records import PaymentRecord, RefundRecord
from router.payments.states import OperationState, PaymentState

#: states in which the acquirer never approved the payment
_NEVER_APPROVED = frozenset(
    {PaymentState.PENDING, PaymentState.UNKNOWN, PaymentState.DECLINED, PaymentState.FAILED}
)


def _line(record: PaymentRecord, kind: MovementKind, key: str, amount: int, at_ms: int) -> Movement:
    assert record.acquirer is not None  # approved somewhere: the acquirer is known
    return Movement(
        key=f"{kind}:{key}",
        kind=kind,
        payment_id=record.id,
        refund_id=None,
        tenant=record.tenant,
        livemode=record.livemode,
        amount=amount,
        currency=record.currency,
        acquirer=record.acquirer,
        acquirer_reference=record.acquirer_reference,
        at_ms=at_ms,
    )


def payment_movements(record: PaymentRecord) -> list[Movement]:
    if record.state in _NEVER_APPROVED or record.acquirer is None:
        return []
    lines = [_line(record, MovementKind.AUTHORIZATION, record.id, record.amount, record.updated_ms)]
    captured_by_ops = 0
    for op in record.operations:
        if op.state is not OperationState.SUCCEEDED:
            continue
        if op.operation is Operation.CAPTURE:
            captured_by_ops += op.amount
            lines.append(_line(record, MovementKind.CAPTURE, op.id, op.amount, op.updated_ms))
        elif op.operation is Operation.VOID:
            lines.append(_line(record, MovementKind.VOID, op.id, op.amount, op.updated_ms))
    captured_with_sale = record.captured_amount - captured_by_ops
    if captured_with_sale > 0:  # a sale: captured with its authorization
        lines.append(
            _line(record, MovementKind.CAPTURE, record.id, captured_with_sale, record.updated_ms)
        )
    return lines


def refund_movements(record: RefundRecord) -> list[Movement]:
    if record.state is not OperationState.SUCCEEDED:
        return []
    return [
        Movement(
            key=f"{MovementKind.REFUND}:{record.id}",
            kind=MovementKind.REFUND,
            payment_id=record.payment_id,
            refund_id=record.id,
            tenant=record.tenant,
            livemode=record.livemode,
            amount=record.amount,
            currency=record.currency,
            acquirer=record.acquirer,
            acquirer_reference=record.acquirer_reference,
            at_ms=record.updated_ms,
        )
    ]


def movements_of(record: PaymentRecord | RefundRecord) -> list[Movement]:
    if isinstance(record, PaymentRecord):
        return payment_movements(record)
    return refund_movements(record)
