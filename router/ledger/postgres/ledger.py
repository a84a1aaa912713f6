"""The system of record on PostgreSQL (asyncpg).

Writes come only from the drainer, a batch of outbox entries per
transaction.  The current row of a record is upserted *only forward*
(``WHERE version < EXCLUDED.version``), events are inserted once per
(record, version), movements once per key keeping the earliest time: a
batch applied twice, or versions applied out of order, leave the same rows.

Every asyncpg and socket error is mapped to :class:`LedgerUnavailable` at
one boundary, :func:`_boundary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from router.ledger.movements import movements_of
from router.ledger.postgres.migrate import check
from router.ledger.protocol import (
    Change,
    Cursor,
    HistoryEvent,
    LedgerUnavailable,
    Movement,
    MovementKind,
    Page,
    PaymentQuery,
)
from router.payments.records import PaymentRecord, RefundRecord

log = logging.getLogger(__name__)

_UPSERT_PAYMENT = """
INSERT INTO payments (id, tenant, livemode, state, amount, currency, acquirer,
                      acquirer_reference, merchant_reference, created_ms, updated_ms,
                      version, record)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)
ON CONFLICT (id) DO UPDATE SET
    state = EXCLUDED.state, acquirer = EXCLUDED.acquirer,
    acquirer_reference = EXCLUDED.acquirer_reference,
    merchant_reference = EXCLUDED.merchant_reference, updated_ms = EXCLUDED.updated_ms,
    version = EXCLUDED.version, record = EXCLUDED.record
WHERE payments.version < EXCLUDED.version
"""

_UPSERT_REFUND = """
INSERT INTO refunds (id, payment_id, tenant, state, amount, currency, acquirer,
                     acquirer_reference, created_ms, updated_ms, version, record)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)
ON CONFLICT (id) DO UPDATE SET
    state = EXCLUDED.state, amount = EXCLUDED.amount,
    acquirer_reference = EXCLUDED.acquirer_reference, updated_ms = EXCLUDED.updated_ms,
    version = EXCLUDED.version, record = EXCLUDED.record
WHERE refunds.version < EXCLUDED.version
"""

_INSERT_EVENT = """
INSERT INTO events (record_kind, record_id, version, payment_id, tenant, state,
                    previous_state, source, at_ms, record)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
ON CONFLICT DO NOTHING
"""

_UPSERT_MOVEMENT = """
INSERT INTO movements (movement_key, kind, payment_id, refund_id, tenant, livemode, amount,
                       currency, acquirer, acquirer_reference, at_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (movement_key) DO UPDATE SET at_ms = LEAST(movements.at_ms, EXCLUDED.at_ms)
"""

_PURGE = """
WITH old AS (
    DELETE FROM payments
    WHERE updated_ms < $1 AND state NOT IN ('pending', 'unknown')
    RETURNING id
), refunds_gone AS (
    DELETE FROM refunds WHERE payment_id IN (SELECT id FROM old)
), events_gone AS (
    DELETE FROM events WHERE payment_id IN (SELECT id FROM old)
), movements_gone AS (
    DELETE FROM movements WHERE payment_id IN (SELECT id FROM old)
)
SELECT count(*) FROM old
"""


@contextlib.asynccontextmanager
async def _boundary() -> AsyncIterator[None]:
    """The one place database trouble becomes LedgerUnavailable.

    InternalClientError too: a server killed mid-operation can leave a
    pooled connection in a state asyncpg refuses to leave ("cannot switch
    to state 12; another operation is in progress", MagicStack/asyncpg#784,
    #1069); the pool terminates that connection when its reset fails, so a
    retry gets a fresh one."""
    try:
        yield
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
        TimeoutError,
    ) as exc:
        raise LedgerUnavailable(f"{type(exc).__name__}: {exc}") from exc


def _payment_row(change: Change) -> tuple[Any, ...]:
    record = change.record
    assert isinstance(record, PaymentRecord)
    return (
        record.id,
        record.tenant,
        record.livemode,
        str(record.state),
        record.amount,
        record.currency,
        record.acquirer,
        record.acquirer_reference,
        record.merchant_reference,
        record.created_ms,
        record.updated_ms,
        record.version,
        change.json,
    )


def _refund_row(change: Change) -> tuple[Any, ...]:
    record = change.record
    assert isinstance(record, RefundRecord)
    return (
        record.id,
        record.payment_id,
        record.tenant,
        str(record.state),
        record.amount,
        record.currency,
        record.acquirer,
        record.acquirer_reference,
        record.created_ms,
        record.updated_ms,
        record.version,
        change.json,
    )


def _event_row(change: Change) -> tuple[Any, ...]:
    event, record = change.event, change.record
    payment_id = record.id if isinstance(record, PaymentRecord) else record.payment_id
    return (
        str(event.kind),
        event.record_id,
        event.version,
        payment_id,
        record.tenant,
        event.state,
        event.previous_state,
        str(event.source),
        event.at_ms,
        change.json,
    )


def _movement_row(m: Movement) -> tuple[Any, ...]:
    return (
        m.key,
        str(m.kind),
        m.payment_id,
        m.refund_id,
        m.tenant,
        m.livemode,
        m.amount,
        m.currency,
        m.acquirer,
        m.acquirer_reference,
        m.at_ms,
    )


def _filters(query: PaymentQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = ["tenant = $1"]
    args: list[Any] = [query.tenant]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.format(n=len(args)))

    if query.merchant_reference is not None:
        add("merchant_reference = ${n}", query.merchant_reference)
    if query.states:
        add("state = ANY(${n}::text[])", [str(s) for s in query.states])
    if query.acquirer is not None:
        add("acquirer = ${n}", query.acquirer)
    if query.created_from_ms is not None:
        add("created_ms >= ${n}", query.created_from_ms)
    if query.created_to_ms is not None:
        add("created_ms < ${n}", query.created_to_ms)
    if query.after is not None:
        args += [query.after.created_ms, query.after.payment_id]
        clauses.append(f"(created_ms, id) < (${len(args) - 1}, ${len(args)})")
    return " AND ".join(clauses), args


class PostgresLedger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        password: str | None = None,
        pool_size: int = 4,
        timeout_s: float = 5.0,
    ) -> PostgresLedger:
        """A pool that connects lazily: a database that is down when the router
        starts delays the drain, never the payments."""
        pool = await asyncpg.create_pool(
            dsn,
            password=password,
            min_size=0,
            max_size=pool_size,
            timeout=timeout_s,
            command_timeout=timeout_s * 6,
        )
        return cls(pool)

    async def check_schema(self) -> None:
        async with _boundary(), self.pool.acquire() as conn:
            await check(conn)

    async def apply(self, changes: Sequence[Change]) -> None:
        payments = [_payment_row(c) for c in changes if isinstance(c.record, PaymentRecord)]
        refunds = [_refund_row(c) for c in changes if isinstance(c.record, RefundRecord)]
        events = [_event_row(c) for c in changes]
        moves = {m.key: m for c in changes for m in movements_of(c.record)}
        async with _boundary(), self.pool.acquire() as conn, conn.transaction():
            if payments:
                await conn.executemany(_UPSERT_PAYMENT, payments)
            if refunds:
                await conn.executemany(_UPSERT_REFUND, refunds)
            await conn.executemany(_INSERT_EVENT, events)
            if moves:
                await conn.executemany(_UPSERT_MOVEMENT, [_movement_row(m) for m in moves.values()])

    async def payment(self, payment_id: str) -> PaymentRecord | None:
        async with _boundary():
            raw = await self.pool.fetchval(
                "SELECT record::text FROM payments WHERE id = $1", payment_id
            )
        return None if raw is None else PaymentRecord.model_validate_json(raw)

    async def refund(self, refund_id: str) -> RefundRecord | None:
        async with _boundary():
            raw = await self.pool.fetchval(
                "SELECT record::text FROM refunds WHERE id = $1", refund_id
            )
        return None if raw is None else RefundRecord.model_validate_json(raw)

    async def payments(self, query: PaymentQuery) -> Page:
        where, args = _filters(query)
        sql = (
            f"SELECT record::text FROM payments WHERE {where} "
            f"ORDER BY created_ms DESC, id DESC LIMIT {int(query.limit) + 1}"
        )
        async with _boundary():
            rows = await self.pool.fetch(sql, *args)
        found = [PaymentRecord.model_validate_json(row[0]) for row in rows]
        page = found[: query.limit]
        last = page[-1] if len(found) > query.limit else None
        return Page(page, Cursor(last.created_ms, last.id) if last else None)

    async def history(self, tenant: str, payment_id: str) -> list[HistoryEvent]:
        async with _boundary():
            rows = await self.pool.fetch(
                "SELECT record_kind, record_id, version, state, previous_state, source, at_ms "
                "FROM events WHERE payment_id = $1 AND tenant = $2 "
                "ORDER BY at_ms, record_kind <> 'payment', version",
                payment_id,
                tenant,
            )
        return [
            HistoryEvent(
                row["record_kind"],
                row["record_id"],
                row["version"],
                row["state"],
                row["previous_state"],
                row["source"],
                row["at_ms"],
            )
            for row in rows
        ]

    async def movements(
        self,
        from_ms: int,
        to_ms: int,
        acquirer: str | None = None,
        *,
        after: tuple[int, str] | None = None,
        limit: int = 10_000,
    ) -> list[Movement]:
        after_ms, after_key = after if after is not None else (from_ms - 1, "")
        async with _boundary():
            rows = await self.pool.fetch(
                "SELECT * FROM movements WHERE at_ms >= $1 AND at_ms < $2 "
                "AND ($3::text IS NULL OR acquirer = $3) AND (at_ms, movement_key) > ($4, $5) "
                "ORDER BY at_ms, movement_key LIMIT $6",
                from_ms,
                to_ms,
                acquirer,
                after_ms,
                after_key,
                limit,
            )
        return [
            Movement(
                key=row["movement_key"],
                kind=MovementKind(row["kind"]),
                payment_id=row["payment_id"],
                refund_id=row["refund_id"],
                tenant=row["tenant"],
                livemode=row["livemode"],
                amount=row["amount"],
                currency=row["currency"],
                acquirer=row["acquirer"],
                acquirer_reference=row["acquirer_reference"],
                at_ms=row["at_ms"],
            )
            for row in rows
        ]

    async def purge(self, before_ms: int) -> int:
        async with _boundary():
            return int(await self.pool.fetchval(_PURGE, before_ms))

    async def ping(self) -> None:
        async with _boundary():
            await self.pool.fetchval("SELECT 1")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pool.close(), 10)
