"""Lookups in the system of record: lists of a caller's payments and the
history of one.

They read the ledger, which the drainer fills moments after each change
(its backlog is a metric): a payment created a moment ago may not be
listed yet, and its current state is always ``GET /v1/payments/{id}``.
"""

from __future__ import annotations

from datetime import datetime

from router.ledger.protocol import Cursor, Ledger, LedgerError, PaymentQuery
from router.payments.models import (
    EventList,
    EventView,
    ListPayments,
    PaymentList,
    PaymentView,
    iso_ms,
)
from router.payments.reads import ledger_unavailable, load_payment, not_found
from router.payments.records import Source
from router.problems import Problem
from router.runtime import Runtime


def _ledger(rt: Runtime) -> Ledger:
    if rt.ledger is None:
        raise Problem(
            404,
            "ledger_not_configured",
            "lists and histories come from the system of record, and this router has none "
            "(see the ledger section of the config)",
        )
    return rt.ledger


def _cursor(text: str | None) -> Cursor | None:
    if text is None:
        return None
    try:
        return Cursor.decode(text)
    except ValueError:
        raise Problem(400, "invalid_cursor", "cursor is not a next_cursor we gave") from None


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


async def list_payments(rt: Runtime, tenant: str, query: ListPayments) -> PaymentList:
    ledger = _ledger(rt)
    wanted = PaymentQuery(
        tenant=tenant,
        merchant_reference=query.merchant_reference,
        states=tuple(query.status),
        acquirer=query.acquirer,
        created_from_ms=_ms(query.created_from),
        created_to_ms=_ms(query.created_to),
        limit=query.limit,
        after=_cursor(query.cursor),
    )
    try:
        page = await ledger.payments(wanted)
    except LedgerError:
        raise ledger_unavailable() from None
    return PaymentList(
        data=[PaymentView.of(p) for p in page.payments],
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
    )


async def payment_events(rt: Runtime, tenant: str, payment_id: str) -> EventList:
    """The history, oldest first; empty for a payment not drained yet."""
    ledger = _ledger(rt)
    try:
        history = await ledger.history(tenant, payment_id)
    except LedgerError:
        raise ledger_unavailable() from None
    if not history:
        payment = await load_payment(rt, payment_id, restore=False)
        if payment is None or payment.tenant != tenant:
            raise not_found("payment")
    return EventList(
        data=[
            EventView(
                object="payment" if e.record_kind == "payment" else "refund",
                id=e.record_id,
                version=e.version,
                status=e.state,
                previous_status=e.previous_state,
                source=Source(e.source),
                at=iso_ms(e.at_ms),
            )
            for e in history
        ]
    )
