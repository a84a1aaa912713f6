"""Noticing that the store lost writes it had acknowledged.

A primary's replication id changes when a replica is promoted in its place
and when a primary restarts.  Either way, writes the old primary acknowledged
may be gone.  The fleet records the replication id it last saw in the store
itself (``pr:store:incarnation``); an instance that reads a different id
from the one recorded -- or finds the record gone, as after a flush -- marks
the store suspect for ``store.failover_check_s`` (``pr:store:suspect_until``,
shared, so instances started later agree).  While suspect, a new payment is
looked up at acquirers before it is sent anywhere (router.payments.lost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.asyncio.cluster import RedisCluster

from router.store import keys
from router.store.protocol import StoreUnavailable
from router.store.redis.client import redis_boundary
from router.store.redis.store import RedisStore

log = logging.getLogger(__name__)


async def _replication_id(client: Any) -> str:
    """The primary's replication id (on Cluster: every primary's, joined)."""
    if isinstance(client, RedisCluster):
        infos = await client.info("replication", target_nodes=RedisCluster.PRIMARIES)
        return ",".join(sorted(str(i.get("master_replid")) for i in infos.values()))
    info = await client.info("replication")
    return str(info.get("master_replid"))


async def check_once(store: RedisStore, window_s: float, seen: str | None) -> str:
    """Compare, record, and refresh ``store.suspect_until_ms``; returns the id seen."""
    client = store.client
    async with redis_boundary():
        current = await _replication_id(client)
        recorded = await client.get(keys.INCARNATION)
        now_ms = int(time.time() * 1000)
        lost = (recorded is not None and recorded != current) or (
            recorded is None and seen is not None
        )
        if lost:
            until = now_ms + int(window_s * 1000)
            log.warning(
                "the store's replication id changed (failover or restart): new payments are "
                "looked up at acquirers for %.0f s",
                window_s,
            )
            await client.set(keys.SUSPECT_UNTIL, until, px=int(window_s * 1000) + 60_000)
        if recorded != current:
            await client.set(keys.INCARNATION, current, px=store.record_ttl_ms)
        suspect_until = await client.get(keys.SUSPECT_UNTIL)
    store.suspect_until_ms = int(suspect_until or 0)
    return current


async def watch_loop(store: RedisStore, window_s: float, every_s: float = 1.0) -> None:
    seen: str | None = None
    while True:
        try:
            seen = await check_once(store, window_s, seen)
        except StoreUnavailable as exc:
            log.debug("store watch: %s", exc)
        await asyncio.sleep(every_s)
