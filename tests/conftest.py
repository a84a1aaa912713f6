"""Fixtures: real sandbox acquirers on 127.0.0.1 and the router app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.sandbox.server import SandboxServer
from router.app import create_app
from router.config import Config
from router.idempotency.protocol import Store
from tests.redis_procs import REDIS_SERVER, RedisCluster, RedisProcess, RedisSentinel

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
        await server.close()


@pytest.fixture
async def two_sandboxes(sandbox_factory: SandboxFactory) -> tuple[SandboxServer, SandboxServer]:
    return await sandbox_factory("sandbox-a"), await sandbox_factory("sandbox-b")


@pytest.fixture
async def router_factory() -> AsyncIterator[RouterFactory]:
    clients: list[TestClient[Any, Any]] = []

    async def start(
        config: Config, store: Store | None = None, **kwargs: Any
    ) -> TestClient[Any, Any]:
        app = create_app(config, store=store, **kwargs)
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


# ------------------------------------------------------------------- Redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinel]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    sentinel = RedisSentinel(tmp_path / "sentinel")
    try:
        sentinel.start()
        yield sentinel
    finally:
        sentinel.stop()
