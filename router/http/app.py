"""The application factory, used by ``payrouter serve`` and by the tests.

Every resource with a lifetime (HTTP client session, embedded sandbox
acquirers, the store, background loops, the config watcher) is a
cleanup_ctx, so start-up and shutdown happen in one order and nothing leaks
between test cases.  Background loops are given what they need (a way to
read the current Runtime, the queue they serve), not the application.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from adapters.connector import EmbeddedAcquirer
from adapters.registry import connector_for
from adapters.sandbox.vault import SandboxVault
from router.config import Config
from router.http import admin, middleware, ops, payments, webhooks
from router.http.keys import (
    CONFIG,
    CONFIG_PATH,
    DELIVERIES,
    DRAIN,
    EMBEDDED,
    FLEET,
    HTTP_SESSION,
    LIFECYCLE,
    LOOPS,
    METRICS,
    RELOADER,
    RUNTIME,
    SHARE,
    TRACING,
    Lifecycle,
)
from router.http.server import name_the_product
from router.ledger.drainer import GROUP as LEDGER_GROUP
from router.ledger.drainer import Drainer, DrainStatus, backlog_loop
from router.ledger.protocol import Ledger, LedgerUnavailable
from router.ops.background import Loops, background_ctx
from router.ops.build import build_runtime, build_store, embedded_vault_key, open_ledger
from router.ops.fleet import Member, fleet_loop
from router.ops.maintenance import maintenance_loop
from router.ops.reconciler import Share, reconciler_loop
from router.ops.reload import ConfigReloader, reloading
from router.payments.steps import NO_HOOKS, Hooks
from router.payments.stranded import stranded_loop
from router.routing.health import health_loop
from router.runtime import Runtime, RuntimeHolder
from router.store.memory import MemoryStore
from router.store.protocol import Outbox, Store
from router.store.redis.store import RedisStore
from router.store.redis.watch import watch_loop
from router.telemetry import logs, tracing
from router.telemetry.metrics import Metrics
from router.telemetry.tracing import Tracing
from router.webhooks.outbound import webhook_loop
from router.webhooks.queue import MemoryDeliveryQueue, RedisDeliveryQueue

log = logging.getLogger(__name__)

Ctx = Callable[[web.Application], AsyncIterator[None]]


async def http_session_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=200, limit_per_host=100, ttl_dns_cache=300)
    # no cookie jar: nothing an acquirer sets may ride along on another payment's call
    app[HTTP_SESSION] = aiohttp.ClientSession(
        connector=connector, raise_for_status=False, cookie_jar=aiohttp.DummyCookieJar()
    )
    yield
    await app[HTTP_SESSION].close()


async def embedded_sandboxes_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sandbox acquirers and vaults the router starts itself (the demo needs
    nothing else); a vault is kept under ``vaults.<name>``."""
    servers: dict[str, EmbeddedAcquirer] = {}
    app[EMBEDDED] = servers
    try:
        for name, settings in app[CONFIG].acquirers.items():
            embed = connector_for(settings).embed
            if settings.embedded and embed is not None:
                server = embed(name, settings)
                await server.start()
                servers[name] = server
                log.info("embedded acquirer %s listening on %s", name, server.url)
        for name, vault in app[CONFIG].vaults.items():
            if vault.embedded:
                server = SandboxVault()
                await server.start()
                servers[embedded_vault_key(name)] = server
                log.info("embedded vault %s listening on %s", name, server.url)
        yield
    finally:
        for server in servers.values():
            await server.close()


def _builder(app: web.Application) -> Callable[[Config, Runtime], Runtime]:
    def build(config: Config, previous: Runtime) -> Runtime:
        return build_runtime(
            config,
            previous.store,
            previous.outbox,
            app[HTTP_SESSION],
            app[EMBEDDED],
            metrics=app[METRICS],
            tracing=app[TRACING],
            previous=previous,
        )

    return build


def runtime_ctx(store: Store | None, hooks: Hooks) -> Ctx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        owned = store is None
        the_store = build_store(config) if store is None else store
        assert isinstance(the_store, MemoryStore | RedisStore)
        outbox: Outbox = the_store
        ledger = await open_ledger(config)
        try:
            if ledger is not None:
                await _check_schema(ledger, config)
                await outbox.ensure_group(LEDGER_GROUP)  # kept for the drainer from now on
            runtime = build_runtime(
                config,
                the_store,
                outbox,
                app[HTTP_SESSION],
                app[EMBEDDED],
                metrics=app[METRICS],
                tracing=app[TRACING],
                hooks=hooks,
                ledger=ledger,
            )
            app[RUNTIME] = RuntimeHolder(runtime, [runtime.version])
            app[DELIVERIES] = (
                RedisDeliveryQueue(the_store.client)
                if isinstance(the_store, RedisStore)
                else MemoryDeliveryQueue()
            )
            app[DRAIN] = DrainStatus()
            yield
        finally:
            if ledger is not None:
                await ledger.close()
            if owned:
                await the_store.close()

    return ctx


async def _check_schema(ledger: Ledger, config: Config) -> None:
    """Refuse to start on a schema that lags (SchemaNotCurrent propagates);
    a database that does not answer now only delays the drain."""
    try:
        await asyncio.wait_for(ledger.check_schema(), timeout=_startup_check_s(config))
    except (LedgerUnavailable, TimeoutError) as exc:
        log.warning("system of record unreachable at start-up (%s); draining will wait", exc)


def _startup_check_s(config: Config) -> float:
    return config.ledger.timeout_s if config.ledger else 5.0


async def reload_ctx(app: web.Application) -> AsyncIterator[None]:
    reloader = ConfigReloader(app[CONFIG_PATH], app[RUNTIME], _builder(app))
    app[RELOADER] = reloader
    async with reloading(reloader, app[CONFIG].server.watch_config_s):
        yield


def _current(app: web.Application) -> Runtime:
    return app[RUNTIME].current


def _consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _health(app: web.Application) -> Any:
    return health_loop(lambda: app[RUNTIME].current.acquirers)


def _reconciler(app: web.Application) -> Any:
    return reconciler_loop(functools.partial(_current, app), app[FLEET].instance, app[SHARE])


def _drainer(app: web.Application) -> Any:
    rt = app[RUNTIME].current
    assert rt.ledger is not None
    drainer = Drainer.of(
        rt.outbox, rt.ledger, rt.config, _consumer(), metrics=rt.metrics, status=app[DRAIN]
    )
    return drainer.run()


def _drain_backlog(app: web.Application) -> Any:
    return backlog_loop(app[RUNTIME].current.outbox, app[DRAIN], app[METRICS])


def _maintenance(app: web.Application) -> Any:
    return maintenance_loop(functools.partial(_current, app), app[SHARE])


def _webhooks(app: web.Application) -> Any:
    return webhook_loop(
        functools.partial(_current, app), app[DELIVERIES], app[HTTP_SESSION], _consumer()
    )


async def _store_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[RUNTIME].current.store
    if isinstance(store, RedisStore):
        window = app[CONFIG].store.failover_check_s
        app[LOOPS].start("store-watch", watch_loop(store, window))
    yield
    await app[LOOPS].stop("store-watch")


def _stranded(app: web.Application) -> Any:
    return stranded_loop(functools.partial(_current, app))


def _fleet(app: web.Application) -> Any:
    return fleet_loop(app[FLEET], functools.partial(_current, app), lambda: app.get(RELOADER))


def _tracer_provider(config: Config) -> Any:
    """The OTLP exporter when the config asks for it (and the extra is there)."""
    if config.server.tracing == "off":
        return None
    if not tracing.available():
        log.error("server.tracing: otlp needs the otel extra (pip install 'payrouter[otel]')")
        return None
    return tracing.otlp_provider()


def _loops(app: web.Application) -> Loops:
    return app[LOOPS]


def create_app(
    config: Config,
    *,
    store: Store | None = None,
    config_path: str | None = None,
    background: bool = True,
    hooks: Hooks = NO_HOOKS,
    tracer_provider: Any = None,
) -> web.Application:
    """``store`` lets tests share one store between app instances;
    ``config_path`` enables reloads (SIGHUP, file change, admin call);
    ``background=False`` leaves out the background loops; ``hooks`` are the
    crash points of the crash-point tests."""
    app = web.Application(
        middlewares=[middleware.observe],
        client_max_size=config.server.max_body_bytes,
    )
    logs.stamp_request_ids()
    app.on_response_prepare.append(name_the_product)
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[LOOPS] = Loops()
    app[FLEET] = Member()
    app[SHARE] = Share()
    app[LIFECYCLE] = Lifecycle()
    app[TRACING] = Tracing(tracer_provider or _tracer_provider(config))
    app[METRICS].watch(lambda: app[RUNTIME].current if RUNTIME in app else None)
    if config_path is not None:
        app[CONFIG_PATH] = config_path
    contexts: list[Ctx] = [http_session_ctx, embedded_sandboxes_ctx, runtime_ctx(store, hooks)]
    if background:
        contexts += [
            background_ctx("health-probes", _loops, _health),
            background_ctx("reconciler", _loops, _reconciler),
            background_ctx("webhooks", _loops, _webhooks),
            background_ctx("maintenance", _loops, _maintenance),
            background_ctx("fleet", _loops, _fleet),
            background_ctx("stranded-claims", _loops, _stranded),
            _store_watch_ctx,
        ]
        if config.ledger is not None:
            contexts.append(background_ctx("ledger-backlog", _loops, _drain_backlog))
            if config.ledger.drain == "embedded":
                contexts.append(background_ctx("ledger-drain", _loops, _drainer))
    if config_path is not None:
        contexts.append(reload_ctx)
    app.cleanup_ctx.extend(contexts)
    payments.add_routes(app)
    webhooks.add_routes(app)
    ops.add_routes(app)
    admin.add_routes(app)
    return app
