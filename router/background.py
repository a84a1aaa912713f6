"""One cleanup_ctx shape for every background loop (health probes, the
reconciler, webhook delivery): started with the app, cancelled with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

Loop = Callable[[web.Application], Coroutine[Any, Any, None]]


def background_ctx(name: str, loop: Loop) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(app), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx
