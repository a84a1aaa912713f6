"""Turning changed records into one atomic commit.

A flow reads records, then changes them through a :class:`Draft` with the
appliers of :mod:`router.payments.outcomes`.  Committing compares-and-sets
each changed record on the version it was read at, appends one outbox event
per new version (what changed, from which source), schedules or clears the
records' reconciliation, and completes or releases the idempotency record,
all in one step.  If a record moved on meanwhile (a webhook, the
reconciler), the draft re-reads and applies its steps again: appliers are
idempotent, so a change that raced ours is simply kept.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from router.payments.records import PaymentRecord, Record, Source, now_ms
from router.payments.states import UNRESOLVED
from router.runtime import Runtime
from router.store.keys import DocKind, shard_of
from router.store.protocol import (
    AlreadySeen,
    ChangeEvent,
    Commit,
    Committed,
    Lease,
    Write,
)

log = logging.getLogger(__name__)

#: how often a commit retries a compare-and-set that lost a race
MAX_CONFLICTS = 20

Step = Callable[..., Any]
Reread = Callable[[], Awaitable[Sequence[Record | None]]]
LeaseOf = Callable[..., Lease | None]


def kind_of(record: Record) -> DocKind:
    return DocKind.PAYMENT if isinstance(record, PaymentRecord) else DocKind.REFUND


def ref_of(record: Record) -> str:
    """The reconciler's name for a record."""
    return f"{kind_of(record)}:{record.id}"


def unresolved(record: Record) -> bool:
    if isinstance(record, PaymentRecord):
        return record.state in UNRESOLVED or record.open_operation() is not None
    return record.unresolved


def seal(
    record: Record, previous_state: str | None, source: Source, at: int
) -> tuple[Write, ChangeEvent]:
    """Stamp a changed record's new version at ``at``, the commit's moment
    (every record of one commit gets the same one: the history orders one
    commit's events by kind, not by which record was sealed first)."""
    before_version = record.version
    record.version = before_version + 1
    record.updated_ms = at
    event = ChangeEvent(
        kind_of(record), record.id, record.version, str(record.state), previous_state, source, at
    )
    return Write(record, before_version, record.model_dump_json()), event


class Draft:
    """Records as read, changed in place by replayable steps until committed."""

    def __init__(
        self,
        rt: Runtime,
        records: Sequence[Record],
        reread: Reread,
        docs: Sequence[str] | None = None,
    ) -> None:
        """``docs``: the records' JSON as stored, when the caller has it (the
        claim that created them): each is compared against it before a commit."""
        self.rt = rt
        self.records: list[Record] = list(records)
        self._reread = reread
        self._base = list(docs) if docs is not None else [r.model_dump_json() for r in records]
        self._states = [str(r.state) for r in self.records]
        self._steps: list[Step] = []

    def apply(self, step: Step) -> Any:
        """Run ``step(*records)`` now, and again on a fresher copy after a conflict."""
        self._steps.append(step)
        return step(*self.records)

    def _commit(
        self, source: Source, lease: LeaseOf | None, seen: str | None, durable: bool
    ) -> Commit:
        """Seal what changed, then derive the answer from the records as sealed."""
        writes: list[Write] = []
        events: list[ChangeEvent] = []
        changed: list[Record] = []
        at = now_ms()
        for record, base, state in zip(self.records, self._base, self._states, strict=True):
            if record.model_dump_json() != base:
                write, event = seal(record, state, source, at)
                writes.append(write)
                events.append(event)
                changed.append(record)
        due = at + int(self.rt.config.reconciler.first_check_s * 1000)
        return Commit(
            shard=shard_of(self.records[0].id),
            writes=tuple(writes),
            events=tuple(events),
            lease=lease(*self.records) if lease else None,
            reconcile=tuple((ref_of(r), due if unresolved(r) else None) for r in changed),
            seen=seen,
            durable=durable,
        )

    async def commit(
        self,
        source: Source,
        *,
        lease: LeaseOf | None = None,
        seen: str | None = None,
        durable: bool = True,
    ) -> bool:
        """Write what changed.  False: the webhook event ``seen`` was applied before."""
        for _ in range(MAX_CONFLICTS):
            commit = self._commit(source, lease, seen, durable)
            if not commit.writes and commit.lease is None and seen is None:
                return True
            outcome = await self.rt.store.commit(commit)
            if isinstance(outcome, Committed):
                written = {w.record.id: w.doc() for w in commit.writes}
                self._base = [
                    written.get(r.id, base)
                    for r, base in zip(self.records, self._base, strict=True)
                ]
                self._states = [str(r.state) for r in self.records]
                self._steps.clear()
                return True
            if isinstance(outcome, AlreadySeen):
                return False
            log.info("%s moved on under us; applying again", outcome.record_id)
            await self._refresh()
        raise RuntimeError(f"{self.records[0].id}: too many concurrent changes")

    async def _refresh(self) -> None:
        fresh = await self._reread()
        if any(r is None for r in fresh):
            raise KeyError(self.records[0].id)
        self.records = [r for r in fresh if r is not None]
        self._base = [r.model_dump_json() for r in self.records]
        self._states = [str(r.state) for r in self.records]
        for step in self._steps:
            step(*self.records)


def payment_draft(rt: Runtime, payment: PaymentRecord, doc: str | None = None) -> Draft:
    async def reread() -> Sequence[Record | None]:
        return [await rt.store.get_payment(payment.id)]

    return Draft(rt, [payment], reread, None if doc is None else [doc])
