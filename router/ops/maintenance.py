"""Housekeeping that keeps Redis and the database from growing without end.

- The outbox is trimmed of entries that every consumer group (webhook fan-out,
  ledger drain) has acknowledged; a group that does not exist yet holds its
  shard whole, so nothing is trimmed before the drainer has read it.  A group
  counts only while its consumer is configured (webhook subscribers, a
  ledger); with none, entries are kept for ``UNREAD_KEEP_MS`` -- long enough
  for a config change that adds one to reach every instance -- and then go.
- The system of record forgets settled payments older than its retention.

Both are idempotent, so every instance may run them.  The fleet shares the
trim as it shares the reconciler's sweep: each worker trims the outboxes of
the shards its reconciler sweeps (:class:`router.ops.reconciler.Share`), so
an idle fleet does not trim every outbox once per worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from router.ledger.drainer import GROUP as LEDGER_GROUP
from router.ledger.protocol import LedgerError
from router.ops.reconciler import Share
from router.runtime import Runtime
from router.store.keys import ALL_SHARDS
from router.store.protocol import StoreUnavailable
from router.webhooks.outbound import GROUP as WEBHOOK_GROUP

log = logging.getLogger(__name__)

TRIM_EVERY_S = 10.0
PURGE_EVERY_S = 3600.0
DAY_MS = 86_400_000


#: how long the outbox keeps entries no configured consumer reads
UNREAD_KEEP_MS = 60_000


def consumer_groups(rt: Runtime) -> list[str]:
    """The groups that must have read an outbox entry before it may go: a
    stale group (its subscribers removed) must not hold the outbox forever."""
    groups = [WEBHOOK_GROUP] if rt.config.webhooks.subscribers else []
    return [*groups, LEDGER_GROUP] if rt.ledger is not None else groups


async def trim_once(rt: Runtime, shards: Sequence[int] = ALL_SHARDS) -> int:
    return await rt.outbox.trim(consumer_groups(rt), unread_keep_ms=UNREAD_KEEP_MS, shards=shards)


async def purge_once(rt: Runtime, now_ms: int) -> int:
    if rt.ledger is None or rt.config.ledger is None:
        return 0
    return await rt.ledger.purge(now_ms - rt.config.ledger.retention_days * DAY_MS)


async def maintenance_loop(current: Callable[[], Runtime], share: Share) -> None:
    last_purge = float("-inf")
    while True:
        rt = current()
        try:
            await trim_once(rt, share.shards)
            if time.monotonic() - last_purge >= PURGE_EVERY_S:
                purged = await purge_once(rt, int(time.time() * 1000))
                last_purge = time.monotonic()
                if purged:
                    log.info("forgot %d payments past the retention", purged)
        except (StoreUnavailable, LedgerError) as exc:
            rt.metrics.background_errors.labels("maintenance").inc()
            log.warning("maintenance: %s", exc)
        await asyncio.sleep(TRIM_EVERY_S)
