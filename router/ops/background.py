"""Background loops (health probes, reconciler, webhooks, drainer, store watch):
started with the app, cancelled with it, and watched.

A loop that ends on its own -- it should run forever -- is logged at once,
and :class:`Loops` reports it dead, which turns ``/readyz`` to 503: an
instance that no longer delivers webhooks or reconciles must not look
healthy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

#: how long one cancellation may take to land before it is repeated, and the
#: bound on stopping a loop at all
STOP_RETRY_S = 0.5
STOP_LIMIT_S = 10.0

LoopFactory = Callable[[web.Application], Coroutine[Any, Any, None]]


class Loops:
    """The running loops of one app, by name."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._ended)
        self.tasks[name] = task

    @staticmethod
    def _ended(task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        log.error("background loop %s stopped: %r", task.get_name(), error)

    def dead(self) -> list[str]:
        return sorted(name for name, task in self.tasks.items() if task.done())

    async def stop(self, name: str) -> None:
        """Cancel until it ends.  Once is not always enough: on Python 3.11 a
        cancellation that lands as an ``asyncio.timeout`` expires is turned
        into a TimeoutError (redis-py reads under such a timeout, and treats
        it as an empty answer), so the loop goes on as if never cancelled.
        Bounded, so a stuck loop cannot hold up shutdown."""
        task = self.tasks.pop(name, None)
        if task is None:
            return
        deadline = asyncio.get_running_loop().time() + STOP_LIMIT_S
        while not task.done():
            if asyncio.get_running_loop().time() >= deadline:
                log.error("background loop %s did not stop within %s s", name, STOP_LIMIT_S)
                return
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_RETRY_S)
        if not task.cancelled():
            task.exception()  # retrieved: _ended has logged it


def background_ctx(
    name: str, loops: Callable[[web.Application], Loops], factory: LoopFactory
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx that runs ``factory(app)`` as the loop ``name``."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        registry = loops(app)
        registry.start(name, factory(app))
        yield
        await registry.stop(name)

    return ctx
