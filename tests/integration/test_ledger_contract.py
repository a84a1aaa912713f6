"""The system of record's contract, run against the memory ledger and a real
PostgreSQL: rows only move forward, versions and movements are taken once
in any order, lookups are scoped to their tenant, pages cover everything
once, and retention forgets only settled payments."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.base import Operation
from router.ledger.memory import MemoryLedger
from router.ledger.postgres.ledger import PostgresLedger
from router.ledger.postgres.migrate import check, migrate, migrate_url, migrations
from router.ledger.protocol import (
    Change,
    Cursor,
    Ledger,
    LedgerUnavailable,
    MovementKind,
    PaymentQuery,
    SchemaNotCurrent,
)
from router.payments.records import (
    Attempt,
    AttemptOutcome,
    OperationRecord,
    PaymentRecord,
    RefundRecord,
    Source,
)
from router.payments.states import OperationState, PaymentState
from router.store.keys import DocKind
from router.store.protocol import ChangeEvent
from tests.procs.postgres import PostgresProcess

_ids = itertools.count(1)


def _pid() -> str:
    """A payment id as the router makes them: never 13 digits in a row."""
    return f"pay_{'ab' * 8}{next(_ids):08x}"


@pytest.fixture(params=["memory", "postgres"])
async def ledger(request: pytest.FixtureRequest, fresh_database: str) -> AsyncIterator[Ledger]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    await migrate_url(fresh_database)
    pg = await PostgresLedger.connect(fresh_database)
    yield pg
    await pg.close()


def _attempt(outcome: AttemptOutcome | None = AttemptOutcome.APPROVED) -> Attempt:
    return Attempt(
        acquirer="acq-a",
        acquirer_key="k",
        operation=Operation.AUTHORIZE,
        started_ms=1,
        outcome=outcome,
        acquirer_reference="ref-1",
    )


def payment(pid: str, version: int, state: PaymentState, **extra: Any) -> PaymentRecord:
    fields: dict[str, Any] = {
        "id": pid,
        "tenant": "shop:test",
        "state": state,
        "amount": 1000,
        "currency": "EUR",
        "capture": False,
        "acquirer": "acq-a",
        "acquirer_reference": "ref-1",
        "attempts": [_attempt()],
        "created_ms": 1_000,
        "updated_ms": 1_000 + version,
        "version": version,
    }
    return PaymentRecord(**(fields | extra))


def change(record: PaymentRecord | RefundRecord, previous: str | None = None) -> Change:
    kind = DocKind.PAYMENT if isinstance(record, PaymentRecord) else DocKind.REFUND
    event = ChangeEvent(
        kind, record.id, record.version, str(record.state), previous, Source.LIVE, record.updated_ms
    )
    return Change(event, record)


def _capture(op_id: str, amount: int, at: int) -> OperationRecord:
    return OperationRecord(
        id=op_id,
        operation=Operation.CAPTURE,
        amount=amount,
        state=OperationState.SUCCEEDED,
        attempt=_attempt(),
        created_ms=at,
        updated_ms=at,
    )


def _life(pid: str) -> list[Change]:
    """Authorized, captured in two parts, refunded in part: five versions."""
    cap1, cap2 = f"cap_{pid[4:]}1", f"cap_{pid[4:]}2"
    v1 = payment(pid, 1, PaymentState.PENDING, attempts=[_attempt(None)], acquirer_reference=None)
    v2 = payment(pid, 2, PaymentState.AUTHORIZED)
    v3 = payment(
        pid,
        3,
        PaymentState.AUTHORIZED,
        captured_amount=600,
        operations=[_capture(cap1, 600, 1_003)],
    )
    v4 = payment(
        pid,
        4,
        PaymentState.CAPTURED,
        captured_amount=1000,
        operations=[_capture(cap1, 600, 1_003), _capture(cap2, 400, 1_004)],
    )
    refund = RefundRecord(
        id=f"re_{pid[4:]}",
        payment_id=pid,
        tenant="shop:test",
        amount=250,
        currency="EUR",
        state=OperationState.SUCCEEDED,
        acquirer="acq-a",
        acquirer_reference="rf-1",
        created_ms=5,
        updated_ms=1_005,
        version=2,
    )
    v5 = v4.model_copy(
        update={"version": 5, "state": PaymentState.PARTIALLY_REFUNDED, "refunded_amount": 250}
    )
    return [change(v1), change(v2), change(v3), change(v4), change(refund), change(v5)]


async def test_a_row_only_moves_forward_and_every_version_is_an_event(ledger: Ledger) -> None:
    pid = _pid()
    life = _life(pid)
    await ledger.apply([life[3]])
    await ledger.apply([life[1], life[0], life[2]])  # late, out of order
    kept = await ledger.payment(pid)
    assert kept is not None
    assert (kept.version, kept.state) == (4, PaymentState.CAPTURED)
    history = await ledger.history("shop:test", pid)
    assert [(e.record_kind, e.version) for e in history] == [("payment", v) for v in (1, 2, 3, 4)]


async def test_a_batch_applied_twice_changes_nothing(ledger: Ledger) -> None:
    pid = _pid()
    await ledger.apply(_life(pid))
    before = (await ledger.history("shop:test", pid), await ledger.movements(0, 10**13))
    await ledger.apply(_life(pid))
    after = (await ledger.history("shop:test", pid), await ledger.movements(0, 10**13))
    assert before == after


async def test_movements_are_the_same_in_any_order_and_keep_the_earliest_time(
    ledger: Ledger,
) -> None:
    pid = _pid()
    await ledger.apply(list(reversed(_life(pid))))
    lines = [m for m in await ledger.movements(0, 10**13) if m.payment_id == pid]
    assert [(m.kind, m.amount, m.at_ms) for m in lines] == [
        (MovementKind.AUTHORIZATION, 1000, 1_002),  # first seen authorized at version 2
        (MovementKind.CAPTURE, 600, 1_003),
        (MovementKind.CAPTURE, 400, 1_004),
        (MovementKind.REFUND, 250, 1_005),
    ]
    assert {m.acquirer for m in lines} == {"acq-a"}
    only_b = await ledger.movements(0, 10**13, acquirer="acq-b")
    assert [m for m in only_b if m.payment_id == pid] == []


async def test_a_sale_shows_its_authorization_and_its_capture(ledger: Ledger) -> None:
    pid = _pid()
    sale = payment(pid, 2, PaymentState.CAPTURED, capture=True, captured_amount=1000)
    await ledger.apply([change(sale)])
    lines = [m for m in await ledger.movements(0, 10**13) if m.payment_id == pid]
    assert [(m.kind, m.amount) for m in lines] == [
        (MovementKind.AUTHORIZATION, 1000),
        (MovementKind.CAPTURE, 1000),
    ]


async def test_declined_and_failed_payments_move_no_money(ledger: Ledger) -> None:
    pid = _pid()
    declined = payment(pid, 2, PaymentState.DECLINED, attempts=[_attempt(AttemptOutcome.DECLINED)])
    await ledger.apply([change(declined)])
    assert [m for m in await ledger.movements(0, 10**13) if m.payment_id == pid] == []


async def test_history_and_lookups_are_scoped_to_the_tenant(ledger: Ledger) -> None:
    pid = _pid()
    await ledger.apply(_life(pid))
    assert await ledger.history("other:test", pid) == []
    assert (await ledger.payments(PaymentQuery(tenant="other:test"))).payments == []
    refund_versions = [
        e for e in await ledger.history("shop:test", pid) if e.record_kind == "refund"
    ]
    assert [e.version for e in refund_versions] == [2]


async def test_filters_and_pages_cover_every_match_exactly_once(ledger: Ledger) -> None:
    tenant = f"list{next(_ids)}:test"
    made = []
    for i in range(7):
        pid = _pid()
        state = PaymentState.CAPTURED if i % 2 else PaymentState.AUTHORIZED
        record = payment(
            pid,
            2,
            state,
            tenant=tenant,
            created_ms=10_000 + i,
            merchant_reference=f"order-{i % 3}",
            acquirer="acq-b" if i == 6 else "acq-a",
        )
        made.append(record)
        await ledger.apply([change(record)])

    seen: list[str] = []
    after: Cursor | None = None
    while True:
        page = await ledger.payments(PaymentQuery(tenant=tenant, limit=3, after=after))
        seen += [p.id for p in page.payments]
        if page.next_cursor is None:
            break
        after = Cursor.decode(page.next_cursor.encode())
    assert seen == [p.id for p in sorted(made, key=lambda p: p.created_ms, reverse=True)]

    async def ids(**query: Any) -> set[str]:
        page = await ledger.payments(PaymentQuery(tenant=tenant, limit=100, **query))
        return {p.id for p in page.payments}

    assert await ids(merchant_reference="order-1") == {made[1].id, made[4].id}
    assert await ids(states=(PaymentState.CAPTURED,)) == {made[i].id for i in (1, 3, 5)}
    assert await ids(acquirer="acq-b") == {made[6].id}
    assert await ids(created_from_ms=10_002, created_to_ms=10_004) == {made[2].id, made[3].id}


async def test_retention_forgets_settled_payments_only(ledger: Ledger) -> None:
    settled, moving = _pid(), _pid()
    await ledger.apply(_life(settled))
    await ledger.apply([change(payment(moving, 1, PaymentState.PENDING))])
    assert await ledger.purge(before_ms=10**13) >= 1
    assert await ledger.payment(settled) is None
    assert await ledger.history("shop:test", settled) == []
    assert [m for m in await ledger.movements(0, 10**13) if m.payment_id == settled] == []
    assert await ledger.payment(moving) is not None


# ----------------------------------------------------------- PostgreSQL only


async def test_a_database_without_the_schema_is_refused_until_migrated(
    fresh_database: str,
) -> None:
    import asyncpg

    conn = await asyncpg.connect(fresh_database)
    try:
        with pytest.raises(SchemaNotCurrent, match="payrouter db migrate"):
            await check(conn)
        applied = await migrate(conn)
        assert applied == [f"{m.version:04d}_{m.name}" for m in migrations()]
        await check(conn)
        assert await migrate(conn) == []  # nothing left to do
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(SchemaNotCurrent, match="changed after they were applied"):
            await check(conn)
    finally:
        await conn.close()


async def test_a_database_that_is_down_raises_ledger_unavailable(
    postgres_server: PostgresProcess,
) -> None:
    await migrate_url(postgres_server.url)
    ledger = await PostgresLedger.connect(postgres_server.url, timeout_s=1)
    try:
        pid = _pid()
        await ledger.apply(_life(pid))
        postgres_server.kill()
        with pytest.raises(LedgerUnavailable):
            await ledger.payment(pid)
        with pytest.raises(LedgerUnavailable):
            await ledger.apply(_life(_pid()))
        postgres_server.start()
        kept = await ledger.payment(pid)  # the pool reconnects
        assert kept is not None
        assert kept.version == 5
    finally:
        await ledger.close()
