"""Reading payments and refunds, wherever they are kept.

The store holds a record while it moves and for the hot window after; the
system of record (the ledger) holds it for its whole life.  A record the
store no longer has is read from the ledger and, before anything may change
it (a capture days later, a refund months later), put back into the store
at its version, atomically and only if the store has none, so the payment
flows and their journal work on it as on any other.

Another tenant's record is simply "not found": ids do not leak whether they
exist.  Nothing here echoes what the caller sent.
"""

from __future__ import annotations

from router.ledger.protocol import LedgerError
from router.payments.context import Call
from router.payments.models import PaymentView, RefundView
from router.payments.records import PaymentRecord, Record, RefundRecord
from router.problems import Problem
from router.runtime import Runtime


def not_found(kind: str) -> Problem:
    return Problem(404, f"{kind}_not_found", f"no such {kind} for this caller")


def ledger_unavailable() -> Problem:
    return Problem(
        503,
        "ledger_unavailable",
        "the record is no longer in the hot store and the system of record did not answer; "
        "nothing was changed. Retry later",
        headers={"Retry-After": "5"},
        retryable=True,
    )


async def load_payment(
    rt: Runtime, payment_id: str, *, restore: bool = True
) -> PaymentRecord | None:
    """From the store, else from the ledger (put back into the store unless
    ``restore`` is False: a read alone need not)."""
    payment = await rt.store.get_payment(payment_id)
    if payment is not None or rt.ledger is None:
        return payment
    try:
        kept = await rt.ledger.payment(payment_id)
    except LedgerError:
        raise ledger_unavailable() from None
    if kept is None or not restore:
        return kept
    await rt.store.restore(kept)  # False: another request restored it first
    return await rt.store.get_payment(payment_id)


async def load_refund(rt: Runtime, refund_id: str) -> RefundRecord | None:
    refund = await rt.store.get_refund(refund_id)
    if refund is not None or rt.ledger is None:
        return refund
    try:
        return await rt.ledger.refund(refund_id)
    except LedgerError:
        raise ledger_unavailable() from None


async def owned_payment(call: Call, payment_id: str, known: Record | None = None) -> PaymentRecord:
    """The caller's payment (``known``: already read with the claim)."""
    payment = known if isinstance(known, PaymentRecord) else None
    if payment is None:
        payment = await load_payment(call.rt, payment_id)
    if payment is None or payment.tenant != call.tenant:
        raise not_found("payment")
    return payment


async def get_payment(rt: Runtime, tenant: str, payment_id: str) -> PaymentView:
    payment = await load_payment(rt, payment_id, restore=False)
    if payment is None or payment.tenant != tenant:
        raise not_found("payment")
    return PaymentView.of(payment)


async def get_refund(rt: Runtime, tenant: str, refund_id: str) -> RefundView:
    refund = await load_refund(rt, refund_id)
    if refund is None or refund.tenant != tenant:
        raise not_found("refund")
    return RefundView.of(refund)
