"""The in-memory store for one process (the embedded demo and fast tests).

Same contract and same key names as the Redis store: every method body runs
without awaiting, so on one event loop each is atomic, and records are kept
serialised, as in Redis, so a caller can never change stored state by
accident.  Nothing survives the process: a claim has no replicas to wait for
and is never suspect.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from router.payments.records import PaymentRecord, Record, RefundRecord, StoredResponse
from router.store import keys
from router.store.keys import ALL_SHARDS, SHARDS, DocKind
from router.store.protocol import (
    AlreadySeen,
    Busy,
    ChangeEvent,
    Claimed,
    ClaimOutcome,
    ClaimRequest,
    Commit,
    CommitOutcome,
    Committed,
    Conflict,
    Finish,
    FleetState,
    LeaseLost,
    Mismatch,
    OutboxEntry,
    Replay,
    Write,
    load_record,
)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Idem:
    fingerprint: str
    resource_id: str
    owner: str = ""
    lease_until_ms: int = 0
    response: str | None = None


@dataclass
class _Doc:
    version: int
    body: str


@dataclass
class _Group:
    delivered: int = 0  # index into the stream
    pending: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> consumer, since


class MemoryStore:
    def __init__(
        self,
        ttl_ms: int = 86_400_000,
        record_ttl_ms: int = 30 * 86_400_000,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        """``clock`` (milliseconds) decides leases and expiry; tests move it on."""
        self._now_ms = clock
        self.ttl_ms = ttl_ms
        self.record_ttl_ms = record_ttl_ms
        self._values: dict[str, object] = {}
        self._expiry: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._streams: dict[int, list[tuple[str, ChangeEvent, str]]] = {}
        self._groups: dict[tuple[int, str], _Group] = {}
        self._unresolved: dict[int, dict[str, int]] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ expiry
    def _purge(self) -> None:
        now = self._now_ms()
        while self._heap and self._heap[0][0] <= now:
            due, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == due:
                del self._expiry[key]
                self._values.pop(key, None)

    def _get(self, key: str) -> object | None:
        self._purge()
        return self._values.get(key)

    def _put(self, key: str, value: object, ttl_ms: int) -> None:
        self._values[key] = value
        self._expire(key, ttl_ms)

    def _expire(self, key: str, ttl_ms: int) -> None:
        if key in self._values:
            due = self._now_ms() + ttl_ms
            self._expiry[key] = due
            heapq.heappush(self._heap, (due, key))

    def _idem(self, key: str) -> _Idem | None:
        value = self._get(key)
        return value if isinstance(value, _Idem) else None

    def _doc(self, kind: DocKind, record_id: str) -> _Doc | None:
        value = self._get(keys.doc(kind, record_id))
        return value if isinstance(value, _Doc) else None

    def _append(self, shard: int, event: ChangeEvent, body: str) -> None:
        entry_id = f"{self._now_ms()}-{next(self._ids)}"
        self._streams.setdefault(shard, []).append((entry_id, event, body))

    def _read_docs(self, request: ClaimRequest) -> dict[str, Record | None]:
        records: dict[str, Record | None] = {}
        for kind, record_id in request.read:
            doc = self._doc(kind, record_id)
            records[record_id] = load_record(kind, doc.body) if doc else None
        return records

    # ------------------------------------------------------------------- claims
    async def claim(self, request: ClaimRequest) -> ClaimOutcome:
        now = self._now_ms()
        key = keys.idem(request.shard, request.scope)
        idem = self._idem(key)
        create = request.create
        if idem is None:
            created = False
            if create is not None and self._doc(create.kind, create.record.id) is None:
                body = create.doc()
                self._put(
                    keys.doc(create.kind, create.record.id),
                    _Doc(create.record.version, body),
                    self.record_ttl_ms,
                )
                if request.create_event is not None:
                    self._append(request.shard, request.create_event, body)
                if request.reconcile is not None:
                    ref, due = request.reconcile
                    self._unresolved.setdefault(request.shard, {})[ref] = due
                created = True
            idem = _Idem(request.fingerprint, request.resource_id, request.owner)
            idem.lease_until_ms = now + request.lease_ms
            self._put(key, idem, self.ttl_ms)
            return Claimed(request.resource_id, True, created, False, self._read_docs(request))
        if idem.fingerprint != request.fingerprint:
            return Mismatch()
        if idem.response is not None:
            return Replay(StoredResponse.model_validate_json(idem.response))
        if idem.owner == request.owner:
            return Claimed(idem.resource_id, True, False, False, self._read_docs(request))
        if idem.lease_until_ms > now:
            return Busy(idem.lease_until_ms - now)
        taken_over = bool(idem.owner)
        idem.owner, idem.lease_until_ms = request.owner, now + request.lease_ms
        return Claimed(idem.resource_id, False, False, taken_over, self._read_docs(request))

    # ------------------------------------------------------------------ commits
    def _check_lease(self, commit: Commit) -> bool | None:
        """True: proceed; None: already completed with this very answer."""
        lease = commit.lease
        if lease is None:
            return True
        idem = self._idem(keys.idem(commit.shard, lease.scope))
        if idem is None:
            raise LeaseLost(lease.scope)
        if idem.response is not None:
            response = lease.response.model_dump_json() if lease.response else None
            if lease.finish is Finish.COMPLETE and idem.response == response:
                return None
            raise LeaseLost(lease.scope)
        if idem.owner != lease.owner:
            raise LeaseLost(lease.scope)
        return True

    def _state(self, write: Write) -> str:
        """fresh: may be written; done: this very write is there; else a conflict."""
        doc = self._doc(write.kind, write.record.id)
        current = doc.version if doc else 0
        if current == write.expected:
            return "fresh"
        if doc is not None and current == write.record.version and (doc.body == write.doc()):
            return "done"
        return "conflict"

    async def commit(self, commit: Commit) -> CommitOutcome:
        if self._check_lease(commit) is None:
            return Committed()
        if commit.seen and self._get(keys.seen(commit.shard, commit.seen)) is not None:
            return AlreadySeen()
        states = [self._state(write) for write in commit.writes]
        for write, state in zip(commit.writes, states, strict=True):
            if state == "conflict":
                return Conflict(write.record.id)
        if states and all(state == "done" for state in states):
            self._finish(commit)  # the same commit again: its writes are there already
            return Committed()
        if "done" in states:
            return Conflict("")
        self._apply(commit)
        self._finish(commit)
        return Committed()

    def _apply(self, commit: Commit) -> None:
        bodies: dict[str, str] = {}
        for write in commit.writes:
            body = write.doc()
            bodies[write.record.id] = body
            self._put(
                keys.doc(write.kind, write.record.id),
                _Doc(write.record.version, body),
                self.record_ttl_ms,
            )
        for event in commit.events:
            self._append(commit.shard, event, bodies[event.record_id])
        pending = self._unresolved.setdefault(commit.shard, {})
        for ref, due in commit.reconcile:
            if due is None:
                pending.pop(ref, None)
            else:
                pending[ref] = due
        if commit.seen:
            self._put(keys.seen(commit.shard, commit.seen), True, self.ttl_ms)

    def _finish(self, commit: Commit) -> None:
        lease = commit.lease
        if lease is None or lease.finish is Finish.KEEP:
            return
        idem = self._idem(keys.idem(commit.shard, lease.scope))
        assert idem is not None
        if lease.finish is Finish.COMPLETE:
            assert lease.response is not None
            idem.response = lease.response.model_dump_json()
            self._expire(keys.idem(commit.shard, lease.scope), self.ttl_ms)
        idem.owner, idem.lease_until_ms = "", 0

    async def extend_lease(self, shard: int, scope: str, owner: str, lease_ms: int) -> bool:
        idem = self._idem(keys.idem(shard, scope))
        if idem is None or idem.response is not None or idem.owner != owner:
            return False
        idem.lease_until_ms = max(idem.lease_until_ms, self._now_ms() + lease_ms)
        return True

    # -------------------------------------------------------------------- reads
    async def get_payment(self, payment_id: str) -> PaymentRecord | None:
        doc = self._doc(DocKind.PAYMENT, payment_id)
        return PaymentRecord.model_validate_json(doc.body) if doc else None

    async def get_refund(self, refund_id: str) -> RefundRecord | None:
        doc = self._doc(DocKind.REFUND, refund_id)
        return RefundRecord.model_validate_json(doc.body) if doc else None

    async def restore(self, record: Record) -> bool:
        kind = DocKind.PAYMENT if isinstance(record, PaymentRecord) else DocKind.REFUND
        if self._doc(kind, record.id) is not None:
            return False
        self._put(
            keys.doc(kind, record.id),
            _Doc(record.version, record.model_dump_json()),
            self.record_ttl_ms,
        )
        return True

    async def due(self, shard: int, now_ms: int, hold_ms: int, limit: int) -> list[str]:
        pending = self._unresolved.get(shard, {})
        due = sorted((at, ref) for ref, at in pending.items() if at <= now_ms)[:limit]
        for _, ref in due:
            pending[ref] = now_ms + hold_ms
        return [ref for _, ref in due]

    async def reconcilers(self, member: str, now_ms: int, alive_ms: int) -> list[str]:
        found = self._get(keys.RECONCILERS)
        passes = dict(found) if isinstance(found, dict) else {}
        passes[member] = now_ms
        alive = {m: at for m, at in passes.items() if at >= now_ms - alive_ms}
        self._put(keys.RECONCILERS, alive, 2 * alive_ms)
        return sorted(alive)

    async def suspect(self) -> bool:
        return False

    async def ping(self) -> None:
        return None

    # -------------------------------------------------------------------- fleet
    async def fleet_state(self) -> FleetState:
        value = self._get(keys.FLEET_STATE)
        return value if isinstance(value, FleetState) else FleetState()

    async def set_fleet_drain(self, acquirer: str, drained: bool) -> None:
        state = await self.fleet_state()
        names = state.drained | {acquirer} if drained else state.drained - {acquirer}
        self._put(keys.FLEET_STATE, FleetState(names, state.generation), keys.FLEET_STATE_TTL_MS)

    async def request_fleet_reload(self) -> int:
        state = await self.fleet_state()
        new = FleetState(state.drained, state.generation + 1)
        self._put(keys.FLEET_STATE, new, keys.FLEET_STATE_TTL_MS)
        return new.generation

    async def report_instance(self, instance: str, report: bytes, ttl_ms: int) -> None:
        self._put(keys.fleet_instance(instance), report, ttl_ms)

    async def fleet_instances(self) -> list[bytes]:
        self._purge()
        prefix = keys.fleet_instance("")
        return [
            value
            for key, value in sorted(self._values.items())
            if key.startswith(prefix) and isinstance(value, bytes)
        ]

    async def close(self) -> None:
        return None

    def scheduled(self, shard: int) -> dict[str, int]:
        """For tests: the reconciliation schedule of one shard."""
        return dict(self._unresolved.get(shard, {}))

    # ------------------------------------------------------------------- outbox
    def _group(self, shard: int, group: str) -> _Group:
        return self._groups.setdefault((shard, group), _Group())

    async def read(self, group: str, consumer: str, count: int, block_ms: int) -> list[OutboxEntry]:
        out: list[OutboxEntry] = []
        for shard in range(SHARDS):
            stream = self._streams.get(shard, [])
            state = self._group(shard, group)
            while state.delivered < len(stream) and len(out) < count:
                entry_id, event, body = stream[state.delivered]
                state.delivered += 1
                state.pending[entry_id] = (consumer, time.monotonic())
                out.append(OutboxEntry(shard, entry_id, event, body))
        return out

    async def ack(self, group: str, entries: list[OutboxEntry]) -> None:
        for entry in entries:
            self._group(entry.shard, group).pending.pop(entry.entry_id, None)

    async def claim_stale(
        self, group: str, consumer: str, idle_ms: int, count: int
    ) -> list[OutboxEntry]:
        out: list[OutboxEntry] = []
        now = time.monotonic()
        for (shard, name), state in self._groups.items():
            if name != group:
                continue
            stream = self._streams.get(shard, [])
            by_id = {entry_id: (event, body) for entry_id, event, body in stream}
            for entry_id, (_, since) in list(state.pending.items()):
                if (now - since) * 1000 >= idle_ms and len(out) < count:
                    state.pending[entry_id] = (consumer, now)
                    event, body = by_id[entry_id]
                    out.append(OutboxEntry(shard, entry_id, event, body))
        return out

    async def backlog(self, group: str) -> int:
        total = 0
        for shard, stream in self._streams.items():
            state = self._group(shard, group)
            total += len(state.pending) + len(stream) - state.delivered
        return total

    async def drained(self, entries: Sequence[OutboxEntry], hot_window_ms: int) -> None:
        for entry in entries:
            kind = entry.event.kind
            doc = self._doc(DocKind(kind), entry.event.record_id)
            if doc is not None and doc.version == entry.event.version:
                self._expire(keys.doc(DocKind(kind), entry.event.record_id), hot_window_ms)

    async def ensure_group(self, group: str) -> None:
        for shard in range(SHARDS):
            self._group(shard, group)

    async def trim(
        self, groups: Sequence[str], *, unread_keep_ms: int, shards: Sequence[int] = ALL_SHARDS
    ) -> int:
        wanted = set(shards)
        if not groups:
            return self._trim_older(self._now_ms() - unread_keep_ms, wanted)
        removed = 0
        for shard, stream in self._streams.items():
            if shard not in wanted or any((shard, g) not in self._groups for g in groups):
                continue
            states = [self._groups[(shard, g)] for g in groups]
            keep = min(
                min((_index_of(stream, i) for i in s.pending), default=s.delivered) for s in states
            )
            if keep > 0:
                del stream[:keep]
                for state in states:
                    state.delivered -= keep
                removed += keep
        return removed

    def _trim_older(self, before_ms: int, shards: set[int]) -> int:
        removed = 0
        for shard, stream in self._streams.items():
            if shard not in shards:
                continue
            old = sum(1 for eid, _, _ in stream if int(eid.partition("-")[0]) < before_ms)
            del stream[:old]
            removed += old
        return removed


def _index_of(stream: list[tuple[str, ChangeEvent, str]], entry_id: str) -> int:
    return next(i for i, (eid, _, _) in enumerate(stream) if eid == entry_id)
