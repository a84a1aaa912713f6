"""Turning a config into live objects: the store, the ledger, the acquirers, a Runtime.

Acquirers are built through the registry (``adapters/registry.py``), so no
kind is named here.  Acquirers that exist in the previous Runtime keep their
breaker (unless its settings changed), health history and drain flag across
a reload; the store, outbox, ledger and metrics outlive every reload.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

import aiohttp

from adapters.connector import EmbeddedAcquirer
from adapters.forwarding import Forwarder, build_forwarder
from adapters.registry import connector_for
from router.config import Config
from router.ledger.memory import MemoryLedger
from router.ledger.postgres.ledger import PostgresLedger
from router.ledger.protocol import Ledger
from router.payments.steps import NO_HOOKS, Hooks
from router.payments.stranded import StrandedClaims
from router.routing.acquirers import Acquirer
from router.routing.breakers import AcquirerBreaker
from router.routing.health import AcquirerHealth
from router.routing.table import RoutingTable
from router.runtime import Runtime
from router.store.ids import Ids
from router.store.memory import MemoryStore
from router.store.protocol import Outbox, Store
from router.store.redis.store import RedisStore
from router.telemetry.metrics import Metrics
from router.telemetry.tracing import Tracing


def build_store(config: Config) -> MemoryStore | RedisStore:
    store = config.store
    if store.kind == "memory":
        return MemoryStore(ttl_ms=store.ttl_s * 1000, record_ttl_ms=store.record_ttl_s * 1000)
    assert store.url is not None  # the config validator requires it
    return RedisStore.from_url(
        store.url,
        store.ttl_s * 1000,
        store.record_ttl_s * 1000,
        op_timeout_s=store.op_timeout_s,
        password=store.password.get() if store.password else None,
        replicas=store.durability.replicas,
        wait_timeout_ms=store.durability.timeout_ms,
    )


async def open_ledger(config: Config) -> Ledger | None:
    """The system of record the config names (PostgreSQL connects lazily)."""
    ledger = config.ledger
    if ledger is None:
        return None
    if ledger.kind == "memory":
        return MemoryLedger()
    assert ledger.url is not None  # the config validator requires it
    return await PostgresLedger.connect(
        ledger.url,
        password=ledger.password.get() if ledger.password else None,
        pool_size=ledger.pool_size,
        timeout_s=ledger.timeout_s,
    )


def build_ids(config: Config, previous: Runtime | None = None) -> Ids:
    """A memory store lives in one process: a secret drawn at start-up will do."""
    if previous is not None:
        return previous.ids
    secret = config.store.id_secret.get() if config.store.id_secret else secrets.token_hex(32)
    return Ids(secret, epoch_ms=config.store.ttl_s * 1000)


def config_version(config: Config) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]


def embedded_vault_key(name: str) -> str:
    """Where an embedded vault is kept beside the embedded acquirers (a dotted
    name, which no acquirer name can be)."""
    return f"vaults.{name}"


def build_forwarders(
    config: Config, embedded: Mapping[str, EmbeddedAcquirer]
) -> dict[str, Forwarder]:
    forwarders: dict[str, Forwarder] = {}
    for name, vault in config.vaults.items():
        local = embedded.get(embedded_vault_key(name))
        forwarders[name] = build_forwarder(name, vault, local.url if local else None)
    return forwarders


def _vaults_for(
    name: str, config: Config, forwarders: Mapping[str, Forwarder]
) -> dict[str, Forwarder]:
    """The vaults that forward to this acquirer."""
    return {v: f for v, f in forwarders.items() if config.vaults[v].forwards_to(name)}


def build_acquirers(
    config: Config,
    session: aiohttp.ClientSession,
    sandboxes: dict[str, EmbeddedAcquirer],
    metrics: Metrics,
    previous: Runtime | None = None,
) -> dict[str, Acquirer]:
    acquirers: dict[str, Acquirer] = {}
    forwarders = build_forwarders(config, sandboxes)
    for name, settings in config.acquirers.items():
        base_url = sandboxes[name].url if settings.embedded else settings.base_url
        assert base_url is not None
        old = previous.acquirers.get(name) if previous else None
        old_settings = previous.config.acquirers.get(name) if previous else None
        if old is not None and old_settings is not None:
            health = old.health
            health.policy = settings.health
            breaker = old.breaker if old_settings.breaker == settings.breaker else None
            drained = old.drained
        else:
            health, breaker, drained = AcquirerHealth(policy=settings.health), None, False
        acquirers[name] = Acquirer(
            name=name,
            kind=settings.kind,
            breaker=breaker
            or AcquirerBreaker(
                name,
                settings.breaker.fail_max,
                settings.breaker.reset_timeout_s,
                tuple(settings.breaker.counted),
            ),
            health=health,
            test_mode=settings.test_mode,
            weight=settings.weight,
            priority=settings.priority,
            drained=drained,
            adapter=connector_for(settings).adapter(
                name, settings, session, base_url, vaults=_vaults_for(name, config, forwarders)
            ),
            metrics=metrics,
        )
    return acquirers


def build_runtime(
    config: Config,
    store: Store,
    outbox: Outbox,
    session: aiohttp.ClientSession,
    sandboxes: dict[str, EmbeddedAcquirer],
    *,
    metrics: Metrics,
    tracing: Tracing | None = None,
    previous: Runtime | None = None,
    hooks: Hooks = NO_HOOKS,
    ledger: Ledger | None = None,
) -> Runtime:
    acquirers = build_acquirers(config, session, sandboxes, metrics, previous)
    return Runtime(
        config=config,
        store=store,
        outbox=outbox,
        acquirers=acquirers,
        routing=RoutingTable(config.routing, acquirers),
        ids=build_ids(config, previous),
        metrics=metrics,
        tracing=tracing or (previous.tracing if previous else Tracing()),
        hooks=previous.hooks if previous else hooks,
        version=config_version(config),
        ledger=previous.ledger if previous else ledger,
        stranded=previous.stranded if previous else StrandedClaims(),
    )
