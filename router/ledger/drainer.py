"""The drainer: from the outbox into the system of record, off the payment path.

Every commit that changes a record appends its new version to the outbox in
the same atomic step; the drainer reads them as the ``ledger`` consumer group,
applies a batch in one database transaction, and only then acknowledges it.
So a version is in the database before the outbox forgets it, whatever
crashes in between: an instance that dies leaves its batch pending and
another claims it; a batch applied twice changes nothing (the ledger's
upserts are keyed on the version).

While the database is down the batch in hand is retried with backoff and the
rest waits in the outbox (the backlog metric shows how much); the payment
path never waits for any of it.  Once a *settled* version (no open attempt,
operation or refund hold) is in the database, the store is told it may let
the record expire after the hot window: follow-ons later load it back
(:mod:`router.ledger.rehydrate`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from router.config import Config
from router.ledger.protocol import Change, Ledger, LedgerError
from router.payments.records import Record, RefundRecord
from router.payments.states import PaymentState
from router.store.protocol import Outbox, OutboxEntry, StoreUnavailable
from router.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

GROUP = "ledger"
#: entries another instance took but did not acknowledge for this long are taken over
STALE_MS = 30_000
CLAIM_EVERY_S = 10.0
BACKOFF_MAX_S = 5.0
IDLE_S = 0.05
#: parse this many entries, then let the event loop run requests
YIELD_EVERY = 32
#: after a batch that was not full, wait this long: the drain trails by at most
#: this much more, and each transaction carries many versions instead of one
LINGER_S = 0.1


def settled(record: Record) -> bool:
    """Nothing is still running on it: it may leave the store after the hot window."""
    if isinstance(record, RefundRecord):
        return not record.unresolved
    return (
        record.state not in (PaymentState.PENDING, PaymentState.UNKNOWN)
        and record.open_operation() is None
        and not record.refund_holds
    )


@dataclass
class DrainStatus:
    """What /admin/ledger and the metrics show."""

    drained: int = 0
    batches: int = 0
    last_drained_at: float | None = None
    last_error: str | None = None
    failing_since: float | None = None
    backlog: int | None = None
    retry_in_s: float = 0.0


@dataclass
class Drainer:
    outbox: Outbox
    ledger: Ledger
    hot_window_ms: int
    consumer: str
    metrics: Metrics | None = None
    batch: int = 500
    status: DrainStatus = field(default_factory=DrainStatus)
    stale_ms: int = STALE_MS
    claim_every_s: float = CLAIM_EVERY_S
    linger_s: float = LINGER_S
    _held: list[OutboxEntry] = field(default_factory=list)
    _claimed_at: float = float("-inf")
    _schema_checked: bool = False

    @classmethod
    def of(
        cls,
        outbox: Outbox,
        ledger: Ledger,
        config: Config,
        consumer: str,
        *,
        metrics: Metrics | None = None,
        status: DrainStatus | None = None,
    ) -> Drainer:
        """The drainer a config describes (the router's and ``payrouter drain``'s)."""
        assert config.ledger is not None
        idle_s = config.ledger.claim_idle_s
        return cls(
            outbox,
            ledger,
            config.store.hot_window_s * 1000,
            consumer,
            metrics=metrics,
            batch=config.ledger.batch,
            status=status or DrainStatus(),
            stale_ms=int(idle_s * 1000),
            claim_every_s=min(CLAIM_EVERY_S, idle_s / 2),
        )

    async def once(self, block_ms: int = 100) -> int:
        """Apply one batch (the one held after a failure first); returns its size."""
        now = time.monotonic()
        if not self._held and now - self._claimed_at >= self.claim_every_s:
            self._claimed_at = now
            self._held = await self.outbox.claim_stale(
                GROUP, self.consumer, self.stale_ms, self.batch
            )
        if not self._held:
            self._held = await self.outbox.read(GROUP, self.consumer, self.batch, block_ms)
        if not self._held:
            return 0
        if not self._schema_checked:
            await self.ledger.check_schema()
            self._schema_checked = True
        entries = self._held
        changes = []
        for index, entry in enumerate(entries):
            if index and not index % YIELD_EVERY:  # an embedded drainer shares the loop
                await asyncio.sleep(0)
            changes.append(Change(entry.event, entry.load(), entry.record))
        await self.ledger.apply(changes)
        await self._let_settled_expire(entries, changes)
        await self.outbox.ack(GROUP, entries)
        self._held = []
        self._count(len(entries))
        return len(entries)

    async def _let_settled_expire(
        self, entries: Sequence[OutboxEntry], changes: Sequence[Change]
    ) -> None:
        latest: dict[str, tuple[OutboxEntry, Record]] = {}
        for entry, change in zip(entries, changes, strict=True):
            known = latest.get(change.record.id)
            if known is None or known[1].version < change.record.version:
                latest[change.record.id] = (entry, change.record)
        done = [entry for entry, record in latest.values() if settled(record)]
        if done:
            await self.outbox.drained(done, self.hot_window_ms)

    def _count(self, size: int) -> None:
        self.status.drained += size
        self.status.batches += 1
        self.status.last_drained_at = time.time()
        self.status.last_error, self.status.failing_since = None, None
        if self.metrics is not None:
            self.metrics.ledger_drained.inc(size)

    def failed(self, exc: Exception) -> float:
        """Note a failure; returns how long to wait before the next try."""
        self.status.last_error = f"{type(exc).__name__}: {exc}"
        self.status.failing_since = self.status.failing_since or time.time()
        self.status.retry_in_s = min(BACKOFF_MAX_S, max(0.1, self.status.retry_in_s * 2))
        if self.metrics is not None:
            self.metrics.ledger_errors.labels(type(exc).__name__).inc()
        return self.status.retry_in_s

    async def run(self) -> None:
        """Drain forever; trouble is logged, counted and retried, never fatal."""
        while True:
            try:
                drained = await self.once()
                self.status.retry_in_s = 0.0
                if not drained:  # a store that cannot block on an empty read
                    await asyncio.sleep(IDLE_S)
                elif drained < self.batch:  # let the next batch fill: one transaction, not ten
                    await asyncio.sleep(self.linger_s)
            except (LedgerError, StoreUnavailable) as exc:
                wait = self.failed(exc)
                log.warning("ledger drain: %s; retrying in %.1f s", exc, wait)
                await asyncio.sleep(wait)


async def backlog_loop(
    outbox: Outbox, status: DrainStatus, metrics: Metrics | None, every_s: float = 5.0
) -> None:
    """Measure how far the drain lags (entries not yet in the database)."""
    while True:
        try:
            status.backlog = await outbox.backlog(GROUP)
            if metrics is not None:
                metrics.ledger_backlog.set(status.backlog)
        except StoreUnavailable as exc:
            log.warning("ledger backlog: %s", exc)
        await asyncio.sleep(every_s)
