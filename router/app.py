"""The application factory, used by ``payrouter serve`` and by the tests.

Every resource with a lifetime (HTTP client session, embedded sandbox
acquirers, the store, the reconciler) is a cleanup_ctx, so start-up and
shutdown happen in one order and nothing leaks between test cases.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from adapters.base import Adapter, Timeouts
from adapters.sandbox.adapter import SandboxAdapter
from adapters.sandbox.server import SandboxServer
from router import api
from router.acquirers import Acquirer
from router.config import AcquirerConfig, Config
from router.idempotency.memory import MemoryStore
from router.idempotency.protocol import Store
from router.keys import CONFIG, HTTP_SESSION, RUNTIME, SANDBOXES
from router.reconciler import reconciler_ctx
from router.runtime import Runtime

log = logging.getLogger(__name__)


async def http_session_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=200, limit_per_host=100, ttl_dns_cache=300)
    app[HTTP_SESSION] = aiohttp.ClientSession(connector=connector, raise_for_status=False)
    yield
    await app[HTTP_SESSION].close()


async def embedded_sandboxes_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sandbox acquirers the router starts itself (the demo needs nothing else)."""
    servers: dict[str, SandboxServer] = {}
    app[SANDBOXES] = servers
    try:
        for name, acq in app[CONFIG].acquirers.items():
            if acq.embedded:
                server = SandboxServer(
                    name, api_key=acq.api_key.get() if acq.api_key else None, faults=acq.faults
                )
                await server.start()
                servers[name] = server
                log.info("embedded sandbox acquirer %s listening on %s", name, server.url)
        yield
    finally:
        for server in servers.values():
            await server.close()


def build_adapter(
    name: str, acq: AcquirerConfig, session: aiohttp.ClientSession, base_url: str
) -> Adapter:
    timeouts = Timeouts(connect=acq.timeouts.connect_s, read=acq.timeouts.read_s)
    api_key = acq.api_key.get() if acq.api_key else None
    return SandboxAdapter(name, session, base_url, timeouts, api_key=api_key)


def build_store(config: Config) -> Store:
    if config.store.kind == "memory":
        return MemoryStore(ttl_ms=config.store.ttl_s * 1000)
    from router.idempotency.redis_store import RedisStore

    return RedisStore.from_config(config.store)


def store_ctx(store: Store | None) -> object:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        owned = store is None
        the_store = build_store(config) if store is None else store
        acquirers: dict[str, Acquirer] = {}
        for name, acq in config.acquirers.items():
            base_url = app[SANDBOXES][name].url if acq.embedded else acq.base_url
            assert base_url is not None
            acquirers[name] = Acquirer(
                name, build_adapter(name, acq, app[HTTP_SESSION], base_url), acq.test_mode
            )
        app[RUNTIME] = Runtime(config=config, store=the_store, acquirers=acquirers)
        yield
        if owned:
            await the_store.close()

    return ctx


def create_app(
    config: Config, *, store: Store | None = None, reconciler: bool = True
) -> web.Application:
    """``store`` lets a test share one store between several app instances."""
    app = web.Application(
        middlewares=[api.problem_middleware],
        client_max_size=config.server.max_body_bytes,
    )
    app[CONFIG] = config
    app.cleanup_ctx.append(http_session_ctx)
    app.cleanup_ctx.append(embedded_sandboxes_ctx)
    app.cleanup_ctx.append(store_ctx(store))  # type: ignore[arg-type]
    if reconciler:
        app.cleanup_ctx.append(reconciler_ctx)
    api.add_routes(app)
    return app
