"""The production store: Redis (single, Sentinel or Cluster, chosen by URL).

Claims and commits are the scripts of :mod:`router.store.redis.scripts`, run
by :class:`ScriptRunner` with a ``WAIT`` for the configured replicas when the
step must survive a failover.  Leases are measured on the Redis server's clock
(``TIME``), so instances with skewed clocks agree on who owns what.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio.cluster import RedisCluster

from router.payments.records import PaymentRecord, Record, RefundRecord, StoredResponse
from router.store import keys
from router.store.keys import DocKind
from router.store.protocol import (
    AlreadySeen,
    Busy,
    Claimed,
    ClaimOutcome,
    ClaimRequest,
    Commit,
    CommitOutcome,
    Committed,
    Conflict,
    FleetState,
    LeaseLost,
    Mismatch,
    Replay,
    Write,
    load_record,
)
from router.store.redis import scripts
from router.store.redis.client import (
    ScriptRunner,
    client_from_url,
    pipelined_from_url,
    redis_boundary,
)
from router.store.redis.group_commit import GroupCommitClient
from router.store.redis.outbox import RedisOutbox


def _parse(kind: DocKind, doc: str | None) -> Record | None:
    return load_record(kind, doc) if doc else None


class RedisStore(RedisOutbox):
    def __init__(
        self,
        client: Any,
        ttl_ms: int,
        record_ttl_ms: int = 30 * 86_400_000,
        *,
        replicas: int = 0,
        wait_timeout_ms: int = 500,
        op_timeout_s: float = 1.0,
        script_client: Any = None,
        alone_client: Any = None,
        grouped_client: GroupCommitClient | None = None,
    ) -> None:
        """``script_client``, ``alone_client``, ``grouped_client``: see
        :class:`ScriptRunner` (``untimed``, ``alone``, ``grouped``)."""
        self.client = client
        self.ttl_ms = ttl_ms
        self.record_ttl_ms = record_ttl_ms
        self.runner = ScriptRunner(
            client,
            replicas,
            wait_timeout_ms,
            op_timeout_s,
            untimed=script_client,
            alone=alone_client,
            grouped=grouped_client,
        )
        self._claim = self.runner.register(scripts.CLAIM)
        self._commit = self.runner.register(scripts.COMMIT)
        self._extend = self.runner.register(scripts.EXTEND_LEASE)
        self._due = self.runner.register(scripts.DUE)
        self._restore = self.runner.register(scripts.RESTORE)
        self._reconcilers = self.runner.register(scripts.RECONCILERS)
        super().__init__(client, self.runner)
        #: until when (ms) new records are suspect; kept fresh by store.redis.watch
        self.suspect_until_ms = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        ttl_ms: int,
        record_ttl_ms: int = 30 * 86_400_000,
        *,
        op_timeout_s: float = 1.0,
        password: str | None = None,
        replicas: int = 0,
        wait_timeout_ms: int = 500,
    ) -> RedisStore:
        client = client_from_url(url, op_timeout_s, password)
        # a Cluster's scripts go through redis-py's own routing by key (ScriptRunner)
        untimed = (
            None
            if isinstance(client, RedisCluster)
            else client_from_url(url, op_timeout_s, password, timed=False)
        )
        alone = pipelined_from_url(url, op_timeout_s, password)
        grouped = (
            pipelined_from_url(
                url, op_timeout_s, password, replicas=replicas, wait_timeout_ms=wait_timeout_ms
            )
            if replicas
            else None
        )
        return cls(
            client,
            ttl_ms,
            record_ttl_ms,
            replicas=replicas,
            wait_timeout_ms=wait_timeout_ms,
            op_timeout_s=op_timeout_s,
            script_client=untimed,
            alone_client=alone,
            grouped_client=grouped if isinstance(grouped, GroupCommitClient) else None,
        )

    # ------------------------------------------------------------------- claims
    async def claim(self, request: ClaimRequest) -> ClaimOutcome:
        create = request.create
        create_key = keys.doc(create.kind, create.record.id) if create else None
        read_keys = [keys.doc(kind, rid) for kind, rid in request.read]
        doc = create.doc() if create else ""
        reply = await self.runner.run(
            self._claim,
            [
                keys.idem(request.shard, request.scope),
                keys.outbox(request.shard),
                create_key or keys.placeholder(request.shard),
                keys.unresolved(request.shard),
                *read_keys,
            ],
            [
                request.fingerprint,
                request.owner,
                request.lease_ms,
                request.resource_id,
                self.ttl_ms,
                str(create.record.version) if create else "",
                doc,
                self.record_ttl_ms,
                request.create_event.dump() if request.create_event else "",
                *(request.reconcile or ("", "")),
            ],
            durable=request.durable,
        )
        kind = reply[0]
        if kind == "mismatch":
            return Mismatch()
        if kind == "replay":
            return Replay(StoredResponse.model_validate_json(reply[1]))
        if kind == "busy":
            return Busy(int(reply[1]))
        created = reply[3] == "1"
        records = {
            # the record this claim created comes back empty: it is the one in hand
            rid: create.record
            if created and create and rid == create.record.id
            else _parse(doc_kind, raw or None)
            for (doc_kind, rid), raw in zip(request.read, reply[5], strict=True)
        }
        return Claimed(
            resource_id=reply[1],
            fresh=reply[2] == "1",
            created=created,
            taken_over=reply[4] == "1",
            records=records,
        )

    # ------------------------------------------------------------------ commits
    async def commit(self, commit: Commit) -> CommitOutcome:
        shard = commit.shard
        lease = commit.lease
        doc_keys = [keys.doc(w.kind, w.record.id) for w in commit.writes]
        docs = [w.doc() for w in commit.writes]
        args: list[Any] = [
            lease.owner if lease else "",
            lease.finish.value if lease else "keep",
            lease.response.model_dump_json() if lease and lease.response else "",
            self.ttl_ms,
            self.record_ttl_ms,
            self.ttl_ms if commit.seen else "",
            len(commit.writes),
        ]
        for write, doc in zip(commit.writes, docs, strict=True):
            args += [write.expected, write.record.version, doc]
        args.append(len(commit.events))
        for event in commit.events:
            args += [event.dump(), _write_index(commit.writes, event.record_id)]
        args.append(len(commit.reconcile))
        for ref, due in commit.reconcile:
            args += [ref, "" if due is None else due]
        reply = await self.runner.run(
            self._commit,
            [
                keys.idem(shard, lease.scope) if lease else keys.placeholder(shard),
                keys.outbox(shard),
                keys.unresolved(shard),
                keys.seen(shard, commit.seen) if commit.seen else keys.placeholder(shard),
                *doc_keys,
            ],
            args,
            durable=commit.durable,
        )
        kind = reply[0]
        if kind == "ok":
            return Committed()
        if kind == "seen":
            return AlreadySeen()
        if kind == "lease_lost":
            raise LeaseLost(lease.scope if lease else "")
        index = int(reply[1])
        return Conflict(commit.writes[index - 1].record.id if index else "")

    async def extend_lease(self, shard: int, scope: str, owner: str, lease_ms: int) -> bool:
        ok = await self.runner.run(
            self._extend, [keys.idem(shard, scope)], [owner, lease_ms], durable=False
        )
        return bool(int(ok))

    # -------------------------------------------------------------------- reads
    async def _get(self, kind: DocKind, record_id: str) -> Record | None:
        async with redis_boundary():
            doc: str | None = await self.client.hget(keys.doc(kind, record_id), "d")
        return _parse(kind, doc)

    async def get_payment(self, payment_id: str) -> PaymentRecord | None:
        record = await self._get(DocKind.PAYMENT, payment_id)
        assert record is None or isinstance(record, PaymentRecord)
        return record

    async def get_refund(self, refund_id: str) -> RefundRecord | None:
        record = await self._get(DocKind.REFUND, refund_id)
        assert record is None or isinstance(record, RefundRecord)
        return record

    async def restore(self, record: Record) -> bool:
        kind = DocKind.PAYMENT if isinstance(record, PaymentRecord) else DocKind.REFUND
        restored = await self.runner.run(
            self._restore,
            [keys.doc(kind, record.id)],
            [record.version, record.model_dump_json(), self.record_ttl_ms],
            durable=True,
        )
        return bool(int(restored))

    async def due(self, shard: int, now_ms: int, hold_ms: int, limit: int) -> list[str]:
        refs = await self.runner.run(
            self._due, [keys.unresolved(shard)], [now_ms, now_ms + hold_ms, limit], durable=False
        )
        return [str(ref) for ref in refs]

    async def reconcilers(self, member: str, now_ms: int, alive_ms: int) -> list[str]:
        members = await self.runner.run(
            self._reconcilers,
            [keys.RECONCILERS],
            [member, now_ms, alive_ms, 2 * alive_ms],
            durable=False,
        )
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def suspect(self) -> bool:
        return self.suspect_until_ms > time.time() * 1000

    async def ping(self) -> None:
        async with redis_boundary():
            await self.client.ping()

    async def close(self) -> None:
        await self.runner.close()

    # -------------------------------------------------------------------- fleet
    async def fleet_state(self) -> FleetState:
        async with redis_boundary():
            fields: dict[str, str] = await self.client.hgetall(keys.FLEET_STATE)
        drained = frozenset(
            name.removeprefix("drained:")
            for name, value in fields.items()
            if name.startswith("drained:") and value == "1"
        )
        return FleetState(drained, int(fields.get("generation", 0)))

    async def set_fleet_drain(self, acquirer: str, drained: bool) -> None:
        async with redis_boundary():
            if drained:
                await self.client.hset(keys.FLEET_STATE, f"drained:{acquirer}", "1")
            else:
                await self.client.hdel(keys.FLEET_STATE, f"drained:{acquirer}")
            await self.client.pexpire(keys.FLEET_STATE, keys.FLEET_STATE_TTL_MS)

    async def request_fleet_reload(self) -> int:
        async with redis_boundary():
            generation = await self.client.hincrby(keys.FLEET_STATE, "generation", 1)
            await self.client.pexpire(keys.FLEET_STATE, keys.FLEET_STATE_TTL_MS)
        return int(generation)

    async def report_instance(self, instance: str, report: bytes, ttl_ms: int) -> None:
        async with redis_boundary():
            await self.client.set(keys.fleet_instance(instance), report, px=ttl_ms)
            await self.client.sadd(keys.FLEET_INSTANCES, instance)
            await self.client.pexpire(keys.FLEET_INSTANCES, keys.FLEET_STATE_TTL_MS)

    async def fleet_instances(self) -> list[bytes]:
        async with redis_boundary():
            ids = sorted(await self.client.smembers(keys.FLEET_INSTANCES))
            if not ids:
                return []
            reports = await self.client.mget([keys.fleet_instance(i) for i in ids])
            gone = [i for i, report in zip(ids, reports, strict=True) if report is None]
            if gone:
                await self.client.srem(keys.FLEET_INSTANCES, *gone)
        return [r if isinstance(r, bytes) else str(r).encode() for r in reports if r is not None]

    async def raw_hash(self, key: str) -> dict[str, str]:
        """For operator tools and tests: one hash as stored."""
        async with redis_boundary():
            value: dict[str, str] = await self.client.hgetall(key)
        return value


def _write_index(writes: tuple[Write, ...], record_id: str) -> int:
    """1-based index of the write whose document an event carries."""
    for index, write in enumerate(writes, 1):
        if write.record.id == record_id:
            return index
    raise ValueError(f"event for {record_id} without a write of that record")
