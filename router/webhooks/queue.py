"""The durable queue of outbound webhook deliveries (one per subscriber and event).

Redis: one stream read by a consumer group that every router instance joins,
so each delivery is handled by one instance at a time; a retry waits in a
sorted set until due and is moved back into the stream; a delivery held by an
instance that died is claimed by another after ``claim_idle_s``; what runs out
of retry window goes to a dead-letter stream, from which it can be redelivered.
Every step writes the next place before it forgets the last (at least once:
receivers dedupe by event id).

Memory: the same contract for one process (the embedded demo).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import orjson
import redis.exceptions as rexc

from router.store import keys as redis_keys
from router.store.redis import scripts
from router.store.redis.client import redis_boundary

GROUP = "deliverers"


@dataclass(frozen=True)
class Delivery:
    event_id: str
    event_type: str
    subscriber: str
    body: str
    attempt: int
    first_ms: int

    def dump(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def load(cls, raw: str | bytes) -> Delivery:
        return cls(**orjson.loads(raw))


class DeliveryQueue(Protocol):
    async def enqueue(self, deliveries: list[Delivery]) -> None: ...

    async def fetch(
        self, consumer: str, count: int, block_ms: int
    ) -> list[tuple[str, Delivery]]: ...

    async def ack(self, entry_id: str) -> None: ...

    async def schedule_retry(self, entry_id: str, delivery: Delivery, due_ms: int) -> None: ...

    async def bury(self, entry_id: str, delivery: Delivery, reason: str) -> None: ...

    async def release_due(self, now_ms: int, limit: int) -> int: ...

    async def size(self) -> int: ...

    async def claim_stale(
        self, consumer: str, idle_ms: int, count: int
    ) -> list[tuple[str, Delivery]]: ...

    async def dead_letters(self, limit: int) -> list[tuple[str, Delivery, str]]: ...

    async def redeliver(self, ids: list[str] | None, now_ms: int) -> int: ...


class RedisDeliveryQueue:
    def __init__(self, client: Any) -> None:
        self.client = client
        self._release = client.register_script(scripts.RELEASE_RETRIES)
        self._group_ready = False

    async def _group(self) -> None:
        if self._group_ready:
            return
        async with redis_boundary():
            with contextlib.suppress(rexc.ResponseError):  # BUSYGROUP: it exists already
                await self.client.xgroup_create(
                    redis_keys.WEBHOOK_STREAM, GROUP, id="0", mkstream=True
                )
        self._group_ready = True

    def _lost_group(self, exc: BaseException) -> bool:
        """NOGROUP: the store came back empty; the group is created again."""
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        if isinstance(cause, rexc.ResponseError) and "NOGROUP" in str(cause):
            self._group_ready = False
            return True
        return False

    async def enqueue(self, deliveries: list[Delivery]) -> None:
        async with redis_boundary():
            for delivery in deliveries:
                await self.client.xadd(redis_keys.WEBHOOK_STREAM, {"d": delivery.dump()})

    @staticmethod
    def _entries(raw: Any) -> list[tuple[str, Delivery]]:
        return [(entry_id, Delivery.load(fields["d"])) for entry_id, fields in raw if fields]

    async def fetch(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, Delivery]]:
        await self._group()
        try:
            async with redis_boundary():
                reply = await self.client.xreadgroup(
                    GROUP, consumer, {redis_keys.WEBHOOK_STREAM: ">"}, count=count, block=block_ms
                )
        except Exception as exc:
            if self._lost_group(exc):
                return []
            raise
        return [item for _, entries in reply or [] for item in self._entries(entries)]

    async def ack(self, entry_id: str) -> None:
        async with redis_boundary():
            await self.client.xack(redis_keys.WEBHOOK_STREAM, GROUP, entry_id)
            await self.client.xdel(redis_keys.WEBHOOK_STREAM, entry_id)

    async def size(self) -> int:
        """Deliveries not yet done: queued, held by an instance, or waiting to retry."""
        async with redis_boundary():
            queued = await self.client.xlen(redis_keys.WEBHOOK_STREAM)
            waiting = await self.client.zcard(redis_keys.WEBHOOK_RETRY)
        return int(queued) + int(waiting)

    async def schedule_retry(self, entry_id: str, delivery: Delivery, due_ms: int) -> None:
        async with redis_boundary():
            await self.client.zadd(redis_keys.WEBHOOK_RETRY, {delivery.dump(): due_ms})
        await self.ack(entry_id)

    async def bury(self, entry_id: str, delivery: Delivery, reason: str) -> None:
        async with redis_boundary():
            await self.client.xadd(
                redis_keys.WEBHOOK_DEAD, {"d": delivery.dump(), "reason": reason}
            )
        await self.ack(entry_id)

    async def release_due(self, now_ms: int, limit: int) -> int:
        async with redis_boundary():
            moved = await self._release(
                keys=[redis_keys.WEBHOOK_RETRY, redis_keys.WEBHOOK_STREAM], args=[now_ms, limit]
            )
        return int(moved)

    async def claim_stale(
        self, consumer: str, idle_ms: int, count: int
    ) -> list[tuple[str, Delivery]]:
        await self._group()
        try:
            async with redis_boundary():
                reply = await self.client.xautoclaim(
                    redis_keys.WEBHOOK_STREAM, GROUP, consumer, idle_ms, "0-0", count=count
                )
        except Exception as exc:
            if self._lost_group(exc):
                return []
            raise
        return self._entries(reply[1])

    async def dead_letters(self, limit: int) -> list[tuple[str, Delivery, str]]:
        async with redis_boundary():
            raw = await self.client.xrange(redis_keys.WEBHOOK_DEAD, count=limit)
        return [(i, Delivery.load(f["d"]), f.get("reason", "")) for i, f in raw]

    async def redeliver(self, ids: list[str] | None, now_ms: int) -> int:
        moved = 0
        for entry_id, delivery, _ in await self.dead_letters(10_000):
            if ids is not None and entry_id not in ids:
                continue
            fresh = replace(delivery, attempt=0, first_ms=now_ms)
            async with redis_boundary():
                await self.client.xadd(redis_keys.WEBHOOK_STREAM, {"d": fresh.dump()})
                await self.client.xdel(redis_keys.WEBHOOK_DEAD, entry_id)
            moved += 1
        return moved


class MemoryDeliveryQueue:
    """One process, no durability: the embedded demo's queue."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._ready: deque[tuple[str, Delivery]] = deque()
        self._held: dict[str, Delivery] = {}
        self._retry: list[tuple[int, Delivery]] = []
        self._dead: dict[str, tuple[Delivery, str]] = {}

    def _id(self) -> str:
        return f"{next(self._ids)}-0"

    async def enqueue(self, deliveries: list[Delivery]) -> None:
        self._ready.extend((self._id(), d) for d in deliveries)

    async def fetch(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, Delivery]]:
        batch: list[tuple[str, Delivery]] = []
        while self._ready and len(batch) < count:
            entry_id, delivery = self._ready.popleft()
            self._held[entry_id] = delivery
            batch.append((entry_id, delivery))
        return batch

    async def ack(self, entry_id: str) -> None:
        self._held.pop(entry_id, None)

    async def size(self) -> int:
        return len(self._ready) + len(self._held) + len(self._retry)

    async def schedule_retry(self, entry_id: str, delivery: Delivery, due_ms: int) -> None:
        self._retry.append((due_ms, delivery))
        await self.ack(entry_id)

    async def bury(self, entry_id: str, delivery: Delivery, reason: str) -> None:
        self._dead[self._id()] = (delivery, reason)
        await self.ack(entry_id)

    async def release_due(self, now_ms: int, limit: int) -> int:
        due = [item for item in self._retry if item[0] <= now_ms][:limit]
        for item in due:
            self._retry.remove(item)
            await self.enqueue([item[1]])
        return len(due)

    async def claim_stale(
        self, consumer: str, idle_ms: int, count: int
    ) -> list[tuple[str, Delivery]]:
        return []  # one process: nothing is held by anybody else

    async def dead_letters(self, limit: int) -> list[tuple[str, Delivery, str]]:
        return [(i, d, r) for i, (d, r) in list(self._dead.items())[:limit]]

    async def redeliver(self, ids: list[str] | None, now_ms: int) -> int:
        chosen = [i for i in self._dead if ids is None or i in ids]
        for entry_id in chosen:
            delivery, _ = self._dead.pop(entry_id)
            await self.enqueue([replace(delivery, attempt=0, first_ms=now_ms)])
        return len(chosen)
