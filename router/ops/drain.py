"""``payrouter drain``: the outbox drainer as a process of its own.

With ``ledger.drain: external`` the routers only write the outbox (they do
anyway) and this process moves it into the system of record, so a slow or
absent database costs the routers nothing at all, not even CPU.  Run one or
more (they share the consumer group); SIGTERM stops it between batches.  It
runs at a lower CPU priority (nice 10): the drain may lag, payments may not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket

from router.config import Config
from router.ledger.drainer import GROUP, Drainer, backlog_loop
from router.ops.background import Loops
from router.ops.build import build_store, open_ledger
from router.store.redis.store import RedisStore

log = logging.getLogger(__name__)

#: the drainer lowers its own CPU priority by this much: wherever it shares
#: CPUs with routers, the payment path is scheduled first
DRAINER_NICENESS = 10


async def run_drainer(config: Config) -> None:
    assert config.ledger is not None
    store = build_store(config)
    assert isinstance(store, RedisStore)
    ledger = await open_ledger(config)
    assert ledger is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    consumer = f"drain-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    drainer = Drainer.of(store, ledger, config, consumer)
    loops = Loops()
    try:
        await store.ensure_group(GROUP)
        loops.start("ledger-drain", drainer.run())
        loops.start("ledger-backlog", backlog_loop(store, drainer.status, None))
        log.info("draining the outbox into the system of record as %s", consumer)
        await stop.wait()
    finally:
        for name in ("ledger-drain", "ledger-backlog"):
            await loops.stop(name)
        await ledger.close()
        await store.close()
