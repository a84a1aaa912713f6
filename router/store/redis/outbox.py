"""The transactional outbox on Redis: one stream per shard, read by consumer groups.

A commit appends its change events to its shard's stream in the same script
that writes the records, so a state change and its event cannot part.  Each
consumer (the system-of-record drainer, the webhook fan-out) is a consumer
group: it reads, acts, then acknowledges; an instance that dies leaves its
entries pending and another claims them after they idled long enough.
Entries are trimmed once every group has acknowledged them.

If Redis comes back empty (a restart without persistence), the groups are
gone and reads fail with NOGROUP: the groups are created again and reading
goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from router.store import keys
from router.store.keys import ALL_SHARDS, SHARDS, DocKind
from router.store.protocol import ChangeEvent, OutboxEntry
from router.store.redis import scripts
from router.store.redis.client import ScriptRunner, redis_boundary


def _entries(shard: int, raw: Iterable[Any]) -> list[OutboxEntry]:
    out = []
    for entry_id, fields in raw:
        if fields and "e" in fields:
            out.append(OutboxEntry(shard, entry_id, ChangeEvent.load(fields["e"]), fields["d"]))
    return out


class RedisOutbox:
    def __init__(self, client: Any, runner: ScriptRunner) -> None:
        self.client = client
        self._outbox_runner = runner
        self._drained = runner.register(scripts.DRAINED)
        self._cluster = isinstance(client, RedisCluster)
        self._ready: set[str] = set()

    @staticmethod
    def _streams() -> list[str]:
        return [keys.outbox(shard) for shard in range(SHARDS)]

    async def ensure_group(self, group: str) -> None:
        """Create the group on every shard's stream (from the first entry)."""
        async with redis_boundary():
            for stream in self._streams():
                with contextlib.suppress(rexc.ResponseError):  # BUSYGROUP: exists already
                    await self.client.xgroup_create(stream, group, id="0", mkstream=True)
        self._ready.add(group)

    async def _reading(self, group: str) -> None:
        if group not in self._ready:
            await self.ensure_group(group)

    def _lost_groups(self, exc: rexc.ResponseError) -> bool:
        if "NOGROUP" in str(exc):
            self._ready.clear()  # the store came back empty: create them again
            return True
        return False

    async def read(self, group: str, consumer: str, count: int, block_ms: int) -> list[OutboxEntry]:
        await self._reading(group)
        try:
            async with redis_boundary():
                if self._cluster:
                    return await self._read_each(group, consumer, count)
                reply = await self.client.xreadgroup(
                    group,
                    consumer,
                    dict.fromkeys(self._streams(), ">"),
                    count=count,
                    block=block_ms or None,
                )
        except Exception as exc:
            cause = exc.__cause__
            if isinstance(cause, rexc.ResponseError) and self._lost_groups(cause):
                return []
            raise
        shard_of = {keys.outbox(s): s for s in range(SHARDS)}
        return [e for stream, raw in reply or [] for e in _entries(shard_of[stream], raw)]

    async def _read_each(self, group: str, consumer: str, count: int) -> list[OutboxEntry]:
        out: list[OutboxEntry] = []
        for shard in range(SHARDS):
            reply = await self.client.xreadgroup(
                group, consumer, {keys.outbox(shard): ">"}, count=count
            )
            for _stream, raw in reply or []:
                out += _entries(shard, raw)
        return out

    async def ack(self, group: str, entries: list[OutboxEntry]) -> None:
        by_shard: dict[int, list[str]] = {}
        for entry in entries:
            by_shard.setdefault(entry.shard, []).append(entry.entry_id)
        async with redis_boundary():
            if self._cluster:  # a stream per shard may live on any node
                for shard, ids in by_shard.items():
                    await self.client.xack(keys.outbox(shard), group, *ids)
                return
            pipe = self.client.pipeline(transaction=False)
            for shard, ids in by_shard.items():
                pipe.xack(keys.outbox(shard), group, *ids)
            await pipe.execute()

    async def claim_stale(
        self, group: str, consumer: str, idle_ms: int, count: int
    ) -> list[OutboxEntry]:
        await self._reading(group)
        out: list[OutboxEntry] = []
        async with redis_boundary():
            for shard in range(SHARDS):
                try:
                    reply = await self.client.xautoclaim(
                        keys.outbox(shard), group, consumer, idle_ms, "0-0", count=count
                    )
                except rexc.ResponseError as exc:
                    if self._lost_groups(exc):
                        return out
                    raise
                out += _entries(shard, reply[1])
                if len(out) >= count:
                    break
        return out

    async def _groups(self, shard: int) -> list[dict[str, Any]]:
        with contextlib.suppress(rexc.ResponseError):  # no such stream
            info: list[dict[str, Any]] = await self.client.xinfo_groups(keys.outbox(shard))
            return info
        return []

    async def backlog(self, group: str) -> int:
        total = 0
        async with redis_boundary():
            for shard in range(SHARDS):
                for info in await self._groups(shard):
                    if info.get("name") == group:
                        total += int(info.get("pending") or 0) + int(info.get("lag") or 0)
        return total

    async def drained(self, entries: Sequence[OutboxEntry], hot_window_ms: int) -> None:
        """One script call for the whole batch; on a cluster, one per shard
        (the docs of a shard share its hash tag, so its slot)."""
        groups: dict[int, list[OutboxEntry]] = {}
        for entry in entries:
            groups.setdefault(entry.shard if self._cluster else 0, []).append(entry)
        for group in groups.values():
            await self._outbox_runner.run(
                self._drained,
                [keys.doc(DocKind(e.event.kind), e.event.record_id) for e in group],
                [hot_window_ms, *(e.event.version for e in group)],
                durable=False,
            )

    async def trim(
        self, groups: Sequence[str], *, unread_keep_ms: int, shards: Sequence[int] = ALL_SHARDS
    ) -> int:
        """Per shard: drop what precedes the oldest entry any group still needs
        (with no group: what is older than ``unread_keep_ms`` on Redis's clock,
        which also stamps the entry ids)."""
        removed = 0
        if not shards:
            return removed
        async with redis_boundary():
            horizon = None if groups else await self._ms_ago(unread_keep_ms)
            for shard in shards:
                keep_from = horizon or await self._oldest_needed(shard, groups)
                if keep_from is not None:
                    removed += int(
                        await self.client.xtrim(
                            keys.outbox(shard), minid=keep_from, approximate=False
                        )
                    )
        return removed

    async def _ms_ago(self, ms: int) -> str:
        """The stream id of ``ms`` ago on the server's clock."""
        now: Any = await self.client.time()
        if isinstance(now, dict):  # Cluster: one answer per node; any will do
            now = next(iter(now.values()))
        seconds, micros = now
        return f"{int(seconds) * 1000 + int(micros) // 1000 - ms}-0"

    async def _oldest_needed(self, shard: int, wanted: Sequence[str]) -> str | None:
        groups = [g for g in await self._groups(shard) if g.get("name") in wanted]
        if len(groups) < len(set(wanted)):
            return None  # a group that does not exist yet may still need everything
        needed: list[tuple[int, int]] = []
        for info in groups:
            if int(info.get("pending") or 0):
                summary = await self.client.xpending(keys.outbox(shard), info["name"])
                needed.append(_stream_id(str(summary["min"])))
            else:
                needed.append(_after(_stream_id(str(info["last-delivered-id"]))))
        oldest = min(needed)
        return f"{oldest[0]}-{oldest[1]}"


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _after(entry: tuple[int, int]) -> tuple[int, int]:
    return entry[0], entry[1] + 1
