"""The application factory, used by ``payrouter serve`` and by the tests.

Every resource with a lifetime (HTTP client session, embedded sandbox
acquirers, the store, health probes, the reconciler, the config watcher) is a
cleanup_ctx, so start-up and shutdown happen in one order and nothing leaks
between test cases.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from adapters.adyen import AdyenAdapter
from adapters.base import Adapter, Timeouts
from adapters.checkout import CheckoutAdapter
from adapters.sandbox.adapter import SandboxAdapter
from adapters.sandbox.server import SandboxServer
from adapters.stripe import StripeAdapter
from router import admin, api, logs
from router.acquirers import Acquirer
from router.breakers import AcquirerBreaker
from router.config import AcquirerConfig, Config
from router.health import AcquirerHealth, HealthPolicy, health_ctx
from router.idempotency.memory import MemoryStore
from router.idempotency.protocol import Store
from router.keys import CONFIG, CONFIG_PATH, HTTP_SESSION, METRICS, RUNTIME, SANDBOXES
from router.metrics import Metrics
from router.reconciler import reconciler_ctx
from router.reload import reload_ctx
from router.routing import RoutingTable
from router.runtime import Runtime, RuntimeHolder
from router.webhooks.outbound import Publisher, delivery_ctx
from router.webhooks.outbox import MemoryOutbox, Outbox, RedisOutbox

log = logging.getLogger(__name__)

Ctx = Callable[[web.Application], AsyncIterator[None]]


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
    """The one place a configured kind becomes an adapter class."""
    adapter = _adapter_class(name, acq, session, base_url)
    if acq.ca_file:
        adapter.tls = ssl.create_default_context(cafile=acq.ca_file)
    elif not acq.tls_verify:  # the config validator allows this for test mode only
        adapter.tls = False
    return adapter


def _adapter_class(
    name: str, acq: AcquirerConfig, session: aiohttp.ClientSession, base_url: str
) -> Adapter:
    timeouts = Timeouts(connect=acq.timeouts.connect_s, read=acq.timeouts.read_s)
    api_key = acq.api_key.get() if acq.api_key else None
    if acq.kind == "sandbox":
        return SandboxAdapter(name, session, base_url, timeouts, api_key=api_key)
    assert api_key is not None  # the config validator requires it
    if acq.kind == "stripe":
        return StripeAdapter(name, session, base_url, timeouts, api_key=api_key)
    if acq.kind == "adyen":
        assert acq.merchant_account is not None
        assert acq.return_url is not None
        return AdyenAdapter(
            name,
            session,
            base_url,
            timeouts,
            api_key=api_key,
            merchant_account=acq.merchant_account,
            return_url=acq.return_url,
        )
    return CheckoutAdapter(name, session, base_url, timeouts, api_key=api_key)


def build_store(config: Config) -> Store:
    if config.store.kind == "memory":
        return MemoryStore(ttl_ms=config.store.ttl_s * 1000)
    from router.idempotency.redis_store import RedisStore

    return RedisStore.from_config(config.store)


def config_version(config: Config) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]


def build_outbox(store: Store) -> Outbox:
    from router.idempotency.redis_store import RedisStore

    if isinstance(store, RedisStore):
        return RedisOutbox(store.client)
    return MemoryOutbox()


def build_runtime(
    config: Config,
    store: Store,
    session: aiohttp.ClientSession,
    sandboxes: dict[str, SandboxServer],
    previous: Runtime | None = None,
    outbox: Outbox | None = None,
    metrics: Metrics | None = None,
) -> Runtime:
    """A Runtime for ``config``.  Acquirers that exist in ``previous`` keep their
    breaker (unless its settings changed), health history and drain flag; the
    outbox and metrics outlive every reload."""
    if outbox is None:
        outbox = previous.publisher.outbox if previous and previous.publisher else MemoryOutbox()
    if metrics is None:
        metrics = previous.metrics if previous else Metrics()
    acquirers: dict[str, Acquirer] = {}
    for name, acq in config.acquirers.items():
        base_url = sandboxes[name].url if acq.embedded else acq.base_url
        assert base_url is not None
        old = previous.acquirers.get(name) if previous else None
        old_cfg = previous.config.acquirers.get(name) if previous else None
        policy = HealthPolicy(**acq.health.model_dump())
        if old is not None and old_cfg is not None:
            health = old.health
            health.policy = policy
            breaker = old.breaker if old_cfg.breaker == acq.breaker else None
            drained = old.drained
        else:
            health, breaker, drained = AcquirerHealth(policy=policy), None, False
        acquirers[name] = Acquirer(
            name=name,
            adapter=build_adapter(name, acq, session, base_url),
            breaker=breaker
            or AcquirerBreaker(
                name,
                acq.breaker.fail_max,
                acq.breaker.reset_timeout_s,
                tuple(acq.breaker.counted),
            ),
            health=health,
            test_mode=acq.test_mode,
            weight=acq.weight,
            priority=acq.priority,
            drained=drained,
            metrics=metrics,
        )
    return Runtime(
        config=config,
        store=store,
        acquirers=acquirers,
        routing=RoutingTable(config.routing, acquirers),
        version=config_version(config),
        publisher=Publisher(config.webhooks, outbox),
        metrics=metrics,
    )


def runtime_ctx(store: Store | None) -> Ctx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        the_store = build_store(config) if store is None else store
        runtime = build_runtime(
            config,
            the_store,
            app[HTTP_SESSION],
            app[SANDBOXES],
            outbox=build_outbox(the_store),
            metrics=app[METRICS],
        )
        app[RUNTIME] = RuntimeHolder(runtime, [runtime.version])
        yield
        if store is None:
            await the_store.close()

    return ctx


def create_app(
    config: Config,
    *,
    store: Store | None = None,
    config_path: str | None = None,
    background: bool = True,
) -> web.Application:
    """``store`` lets tests share one store between app instances;
    ``config_path`` enables reloads (SIGHUP, file change, admin call);
    ``background=False`` leaves out health probes and the reconciler."""
    app = web.Application(
        middlewares=[api.observe_middleware, api.problem_middleware],
        client_max_size=config.server.max_body_bytes,
    )
    logs.stamp_request_ids()
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[METRICS].watch(lambda: app[RUNTIME].current if RUNTIME in app else None)
    if config_path is not None:
        app[CONFIG_PATH] = config_path
    contexts: list[Any] = [http_session_ctx, embedded_sandboxes_ctx, runtime_ctx(store)]
    if background:
        contexts += [health_ctx, reconciler_ctx, delivery_ctx]
    if config_path is not None:
        contexts.append(reload_ctx)
    app.cleanup_ctx.extend(contexts)
    api.add_routes(app)
    admin.add_routes(app)
    return app
