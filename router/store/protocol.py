"""The store contract shared by the memory and Redis stores.

Two atomic steps carry a payment; each is one Redis script on the keys of one
shard, followed (on the same connection) by a ``WAIT`` for the replicas when
the step must survive a failover:

* :meth:`Store.claim` -- take the idempotency record for (tenant, key) with
  an owner token and a lease, and, for a new record, create the resource with
  its write-ahead attempt in the same step.  A claim repeated by the same
  owner (a retry after a lost reply) is recognised as ours.
* :meth:`Store.commit` -- compare-and-set records by version, append their
  change events to the outbox, schedule or clear reconciliation, and
  complete or release the idempotency record, all at once.  Run twice (a
  retried command whose reply was lost), it recognises its own writes.

A step that could not be acknowledged raises :class:`StoreUnavailable` (and
:class:`NotDurable` when it was written but not replicated): the caller fails
closed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import field
from typing import Protocol

import orjson

from adapters.values import frozen
from router.payments.records import PaymentRecord, Record, RefundRecord, Source, StoredResponse
from router.store.keys import ALL_SHARDS, DocKind


class StoreUnavailable(Exception):
    """The store cannot be reached or refused the write: fail closed."""


class NotDurable(StoreUnavailable):
    """Written on the primary but not acknowledged by enough replicas in time:
    a failover now could lose it, so nothing may act on it."""


class LeaseLost(Exception):
    """Another owner holds the record now; this request must not act further."""


# ----------------------------------------------------------------------- claims


@frozen
class Write:
    """Compare-and-set one record: ``expected`` is the stored version it
    replaces (0: the record must not exist yet)."""

    record: Record
    expected: int
    #: the record's JSON as written, when the writer has it already (sealed)
    known_doc: str | None = None

    def doc(self) -> str:
        return self.known_doc if self.known_doc is not None else self.record.model_dump_json()

    @property
    def kind(self) -> DocKind:
        return DocKind.PAYMENT if isinstance(self.record, PaymentRecord) else DocKind.REFUND


@frozen
class ChangeEvent:
    """One version of one record, as the outbox carries it to the system of
    record and to webhook subscribers."""

    kind: DocKind
    record_id: str
    version: int
    state: str
    previous_state: str | None
    source: Source
    at_ms: int

    def dump(self) -> str:
        # orjson writes a dataclass, and a str enum as its value, natively
        return orjson.dumps(self).decode()

    @classmethod
    def load(cls, raw: str | bytes) -> ChangeEvent:
        data = orjson.loads(raw)
        return cls(
            kind=DocKind(data["kind"]),
            record_id=data["record_id"],
            version=int(data["version"]),
            state=data["state"],
            previous_state=data["previous_state"],
            source=Source(data["source"]),
            at_ms=int(data["at_ms"]),
        )


@frozen
class ClaimRequest:
    scope: str
    shard: int
    fingerprint: str
    owner: str
    lease_ms: int
    resource_id: str
    #: created with a new record (never over an existing one)
    create: Write | None = None
    create_event: ChangeEvent | None = None
    #: records to read back with the claim (saves a round trip on a retry)
    read: tuple[tuple[DocKind, str], ...] = ()
    durable: bool = True
    #: with ``create``: the reconciliation entry (ref, due ms) written with
    #: it, so a record whose owner dies before settling is still resolved
    #: when nobody retries (the settle clears or moves it)
    reconcile: tuple[str, int] | None = None


@frozen
class Claimed:
    resource_id: str
    fresh: bool  # a new record: nobody worked on this key before
    created: bool  # ``create`` was written by this claim
    taken_over: bool  # a previous owner's lease expired: its work must be resolved first
    records: dict[str, Record | None] = field(default_factory=dict)


@frozen
class Replay:
    response: StoredResponse


@frozen
class Busy:
    retry_after_ms: int


@frozen
class Mismatch:
    pass


ClaimOutcome = Claimed | Replay | Busy | Mismatch


# ---------------------------------------------------------------------- commits


class Finish(enum.Enum):
    """What a commit does with the idempotency record it holds."""

    KEEP = "keep"  # still working: the lease stays
    COMPLETE = "complete"  # store the final answer; replayed from now on
    RELEASE = "release"  # give the lease back; the next retry continues


@frozen
class Lease:
    scope: str
    owner: str
    finish: Finish = Finish.KEEP
    response: StoredResponse | None = None


@frozen
class Commit:
    shard: int
    writes: tuple[Write, ...] = ()
    events: tuple[ChangeEvent, ...] = ()
    lease: Lease | None = None
    #: reconciliation: reference ("payment:<id>") -> due time in ms, None to clear
    reconcile: tuple[tuple[str, int | None], ...] = ()
    #: an inbound webhook event (digest) this commit applies; refused if already seen
    seen: str | None = None
    durable: bool = True


@frozen
class Committed:
    pass


@frozen
class Conflict:
    """A record moved on since it was read: re-read and apply again."""

    record_id: str


@frozen
class AlreadySeen:
    pass


CommitOutcome = Committed | Conflict | AlreadySeen


# ------------------------------------------------------------------------ store


def load_record(kind: DocKind, body: str | bytes) -> Record:
    """A stored record's JSON, as the model of its kind."""
    if kind is DocKind.PAYMENT:
        return PaymentRecord.model_validate_json(body)
    return RefundRecord.model_validate_json(body)


@frozen
class OutboxEntry:
    shard: int
    entry_id: str
    event: ChangeEvent
    record: str  # the record's JSON at that version

    def load(self) -> Record:
        return load_record(self.event.kind, self.record)


@frozen
class FleetState:
    """What the operator asked of every instance."""

    drained: frozenset[str] = frozenset()
    #: bumped by each reload request; an instance reloads when it sees a new one
    generation: int = 0


class Store(Protocol):
    ttl_ms: int

    async def claim(self, request: ClaimRequest) -> ClaimOutcome: ...

    async def commit(self, commit: Commit) -> CommitOutcome: ...

    async def extend_lease(self, shard: int, scope: str, owner: str, lease_ms: int) -> bool:
        """Heartbeat: push our lease to now + lease_ms; False if no longer ours."""
        ...

    async def get_payment(self, payment_id: str) -> PaymentRecord | None: ...

    async def get_refund(self, refund_id: str) -> RefundRecord | None: ...

    async def restore(self, record: Record) -> bool:
        """Put a record from the system of record back, at its version, unless
        the store holds one already; no event (nothing changed)."""
        ...

    async def due(self, shard: int, now_ms: int, hold_ms: int, limit: int) -> list[str]:
        """Reconciliation references due now, each held for ``hold_ms`` so one
        instance at a time works on it."""
        ...

    async def reconcilers(self, member: str, now_ms: int, alive_ms: int) -> list[str]:
        """Note ``member`` as a reconciler passing at ``now_ms``; the members
        that passed within ``alive_ms`` of it, itself included, sorted."""
        ...

    async def suspect(self) -> bool:
        """True shortly after the store lost writes it had acknowledged (a
        failover or restart was detected): new records may be lost ones."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...

    async def fleet_state(self) -> FleetState: ...

    async def set_fleet_drain(self, acquirer: str, drained: bool) -> None: ...

    async def request_fleet_reload(self) -> int:
        """Bump the reload generation; the new one."""
        ...

    async def report_instance(self, instance: str, report: bytes, ttl_ms: int) -> None: ...

    async def fleet_instances(self) -> list[bytes]:
        """The reports of the instances alive (reported within their ttl)."""
        ...


class Outbox(Protocol):
    """The transactional outbox, read by consumer groups (``ledger``, ``webhooks``)."""

    async def ensure_group(self, group: str) -> None:
        """Make the group exist from the oldest entry kept, so that nothing
        written from now on is trimmed before the group has read it."""
        ...

    async def read(
        self, group: str, consumer: str, count: int, block_ms: int
    ) -> list[OutboxEntry]: ...

    async def ack(self, group: str, entries: list[OutboxEntry]) -> None: ...

    async def claim_stale(
        self, group: str, consumer: str, idle_ms: int, count: int
    ) -> list[OutboxEntry]: ...

    async def backlog(self, group: str) -> int:
        """Entries not yet acknowledged by ``group`` (pending plus unread)."""
        ...

    async def drained(self, entries: Sequence[OutboxEntry], hot_window_ms: int) -> None:
        """The system of record holds these versions: the store may now let
        each record expire after the hot window (unless it changed since)."""
        ...

    async def trim(
        self, groups: Sequence[str], *, unread_keep_ms: int, shards: Sequence[int] = ALL_SHARDS
    ) -> int:
        """Forget entries every one of ``groups`` has acknowledged, in the
        outboxes of ``shards``; a shard where one of them does not exist yet
        is left whole.  With no group (no consumer configured), forget what is
        older than ``unread_keep_ms``.  Returns how many."""
        ...
