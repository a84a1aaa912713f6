"""The system of record in process memory: for the demo and for tests.

It keeps everything for as long as the process lives (a restart forgets all),
so it suits one process only; it obeys the same contract as the PostgreSQL
ledger (``tests/integration/test_ledger_contract.py`` runs both).
"""

from __future__ import annotations

from collections.abc import Sequence

from router.ledger.movements import movements_of
from router.ledger.protocol import (
    Change,
    Cursor,
    HistoryEvent,
    Movement,
    Page,
    PaymentQuery,
)
from router.payments.records import PaymentRecord, RefundRecord
from router.payments.states import PaymentState

_OPEN = frozenset({PaymentState.PENDING, PaymentState.UNKNOWN})


def _matches(record: PaymentRecord, query: PaymentQuery) -> bool:
    checks = (
        record.tenant == query.tenant,
        query.merchant_reference in (None, record.merchant_reference),
        not query.states or record.state in query.states,
        query.acquirer in (None, record.acquirer),
        query.created_from_ms is None or record.created_ms >= query.created_from_ms,
        query.created_to_ms is None or record.created_ms < query.created_to_ms,
        query.after is None
        or (record.created_ms, record.id) < (query.after.created_ms, query.after.payment_id),
    )
    return all(checks)


class MemoryLedger:
    def __init__(self) -> None:
        self._payments: dict[str, PaymentRecord] = {}
        self._refunds: dict[str, RefundRecord] = {}
        self._events: dict[tuple[str, str, int], tuple[str, HistoryEvent]] = {}
        self._movements: dict[str, Movement] = {}

    async def apply(self, changes: Sequence[Change]) -> None:
        for change in changes:
            self._apply(change)

    def _apply(self, change: Change) -> None:
        record, event = change.record, change.event
        table: dict[str, PaymentRecord] | dict[str, RefundRecord]
        table = self._payments if isinstance(record, PaymentRecord) else self._refunds
        current = table.get(record.id)
        if current is None or current.version < record.version:
            table[record.id] = record  # type: ignore[assignment]
        payment_id = record.id if isinstance(record, PaymentRecord) else record.payment_id
        self._events.setdefault(
            (str(event.kind), event.record_id, event.version),
            (
                payment_id,
                HistoryEvent(
                    str(event.kind),
                    event.record_id,
                    event.version,
                    event.state,
                    event.previous_state,
                    str(event.source),
                    event.at_ms,
                ),
            ),
        )
        for movement in movements_of(record):
            known = self._movements.get(movement.key)
            if known is None or movement.at_ms < known.at_ms:
                self._movements[movement.key] = movement

    async def payment(self, payment_id: str) -> PaymentRecord | None:
        return self._payments.get(payment_id)

    async def refund(self, refund_id: str) -> RefundRecord | None:
        return self._refunds.get(refund_id)

    async def payments(self, query: PaymentQuery) -> Page:
        found = sorted(
            (p for p in self._payments.values() if _matches(p, query)),
            key=lambda p: (p.created_ms, p.id),
            reverse=True,
        )
        page = found[: query.limit]
        more = len(found) > query.limit
        last = page[-1] if page and more else None
        return Page(page, Cursor(last.created_ms, last.id) if last else None)

    async def history(self, tenant: str, payment_id: str) -> list[HistoryEvent]:
        payment = self._payments.get(payment_id)
        if payment is None or payment.tenant != tenant:
            return []
        events = [e for pid, e in self._events.values() if pid == payment_id]
        return sorted(events, key=lambda e: (e.at_ms, e.record_kind != "payment", e.version))

    async def movements(
        self,
        from_ms: int,
        to_ms: int,
        acquirer: str | None = None,
        *,
        after: tuple[int, str] | None = None,
        limit: int = 10_000,
    ) -> list[Movement]:
        found = sorted(
            (
                m
                for m in self._movements.values()
                if from_ms <= m.at_ms < to_ms
                and acquirer in (None, m.acquirer)
                and (after is None or (m.at_ms, m.key) > after)
            ),
            key=lambda m: (m.at_ms, m.key),
        )
        return found[:limit]

    async def purge(self, before_ms: int) -> int:
        old = {
            p.id
            for p in self._payments.values()
            if p.updated_ms < before_ms and p.state not in _OPEN
        }
        self._payments = {k: v for k, v in self._payments.items() if k not in old}
        self._refunds = {k: v for k, v in self._refunds.items() if v.payment_id not in old}
        self._events = {k: v for k, v in self._events.items() if v[0] not in old}
        self._movements = {k: v for k, v in self._movements.items() if v.payment_id not in old}
        return len(old)

    async def check_schema(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
