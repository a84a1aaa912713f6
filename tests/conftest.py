"""Fixtures: real sandbox acquirers on 127.0.0.1 and the router app factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.sandbox.server import SandboxServer
from router.config import Config, ServerConfig
from router.http.app import create_app
from router.http.server import Runner
from router.store.protocol import Store
from tests.procs.postgres import INITDB, POSTGRES, PostgresProcess, create_database
from tests.procs.redis import (
    REDIS_SERVER,
    RedisCluster,
    RedisProcess,
    RedisSentinel,
    ReplicatedRedis,
)


def _need_postgres() -> None:
    if POSTGRES is None or INITDB is None:
        pytest.fail("PostgreSQL server binaries are missing (make test installs postgresql)")


def _need_redis() -> None:
    """A missing binary fails the test: ``make test`` installs it."""
    if REDIS_SERVER is None:
        pytest.fail("redis-server is not installed (make test installs it with apt-get)")


#: a teardown that takes longer is a hang: fail with its traceback instead of waiting forever
TEARDOWN_S = 30

SandboxFactory = Callable[..., Awaitable[SandboxServer]]
RouterFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def sandbox_factory() -> AsyncIterator[SandboxFactory]:
    servers: list[SandboxServer] = []

    async def start(name: str = "sandbox", **kwargs: Any) -> SandboxServer:
        server = SandboxServer(name, seed=7, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await asyncio.wait_for(server.close(), TEARDOWN_S)


@pytest.fixture
async def two_sandboxes(sandbox_factory: SandboxFactory) -> tuple[SandboxServer, SandboxServer]:
    return await sandbox_factory("sandbox-a"), await sandbox_factory("sandbox-b")


class ListenerTestServer(TestServer):
    """A test server that listens the way ``payrouter serve`` does: through
    :class:`router.http.server.Runner`, with the config's listener limits and
    without cancelling a handler whose client left (aiohttp's test default)."""

    def __init__(self, app: web.Application, server: ServerConfig, **kwargs: Any) -> None:
        super().__init__(app, host="127.0.0.1", **kwargs)
        self._listener = server

    async def _make_runner(self, **kwargs: Any) -> Runner:
        return Runner(self.app, self._listener)


@pytest.fixture
async def router_factory() -> AsyncIterator[RouterFactory]:
    clients: list[TestClient[Any, Any]] = []

    async def start(
        config: Config, store: Store | None = None, **kwargs: Any
    ) -> TestClient[Any, Any]:
        app = create_app(config, store=store, **kwargs)
        client: TestClient[Any, Any] = TestClient(ListenerTestServer(app, config.server))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await asyncio.wait_for(client.close(), TEARDOWN_S)


# ------------------------------------------------------------------- Redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    _need_redis()
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server that also speaks TLS, with a certificate from a test CA."""
    _need_redis()
    server = RedisProcess(tmp_path / "redis-tls", tls=trustme.CA())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    _need_redis()
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinel]:
    _need_redis()
    sentinel = RedisSentinel(tmp_path / "sentinel")
    try:
        sentinel.start()
        yield sentinel
    finally:
        sentinel.stop()


@pytest.fixture
async def replicated_redis(tmp_path: Path) -> AsyncIterator[ReplicatedRedis]:
    """Primary + replica (through a stalling proxy) + three sentinels."""
    _need_redis()
    redis = ReplicatedRedis(tmp_path / "replicated")
    try:
        await redis.start()
        yield redis
    finally:
        await asyncio.wait_for(redis.close(), TEARDOWN_S)


# -------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresProcess]:
    """One server for the tests that only need a database of their own."""
    _need_postgres()
    server = PostgresProcess(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_database(postgres_session: PostgresProcess) -> str:
    """The URL of a new, empty database (no migrations applied)."""
    return create_database(postgres_session)


@pytest.fixture
async def ledger_url(fresh_database: str) -> str:
    """The URL of a new database with every migration applied."""
    from router.ledger.postgres.migrate import migrate_url

    await migrate_url(fresh_database)
    return fresh_database


@pytest.fixture
def postgres_server(tmp_path: Path) -> Iterator[PostgresProcess]:
    """A server of this test's own, to kill and restart."""
    _need_postgres()
    server = PostgresProcess(tmp_path / "postgres")
    server.start()
    yield server
    server.stop()
