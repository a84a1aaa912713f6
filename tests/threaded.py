"""A router, its sandboxes and its log lines on an event loop in a thread.

Property-based tests (hypothesis) are synchronous and run hundreds of
examples; starting a router per example would take minutes.  This runs one
router for a whole module, behind the production listener
(:class:`router.http.server.Runner`), and lets a test talk to it over real
sockets with ``http.client`` and read what it logged, stored and sent on.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from adapters.sandbox.server import SandboxServer
from router.config import Config
from router.http.app import create_app
from router.http.keys import RUNTIME
from router.http.server import Runner
from router.runtime import Runtime
from router.telemetry.logs import JsonFormatter
from tests.procs.net import free_port


class LogLines(logging.Handler):
    """Every record any logger writes, formatted as the service writes it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._lock:
            self.lines.append(line)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return self.lines[mark:]

    def mark(self) -> int:
        with self._lock:
            return len(self.lines)


@contextmanager
def capturing_logs() -> Iterator[LogLines]:
    root = logging.getLogger()
    handler, level = LogLines(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class ThreadedRouter:
    """``make_config(sandbox_urls)`` builds the config once the sandboxes listen."""

    def __init__(self, make_config: Callable[[dict[str, str]], Config], sandboxes: int = 2) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.sandboxes = [SandboxServer(f"sandbox-{'ab'[i]}", seed=1) for i in range(sandboxes)]
        self._make_config = make_config
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failed: BaseException | None = None
        self.app: web.Application | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by __enter__
            self._failed = exc
            self._ready.set()

    async def _serve(self) -> None:
        for sandbox in self.sandboxes:
            await sandbox.start()
        config = self._make_config({s.state.name: s.url for s in self.sandboxes})
        self.app = create_app(config, background=False)
        runner = Runner(self.app, config.server)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        for sandbox in self.sandboxes:
            await sandbox.close()

    @property
    def runtime(self) -> Runtime:
        assert self.app is not None
        return self.app[RUNTIME].current

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the router's loop (to read its store)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, Any] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def __enter__(self) -> ThreadedRouter:
        self.thread.start()
        assert self._ready.wait(15), "router did not start"
        if self._failed is not None:
            raise self._failed
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)
