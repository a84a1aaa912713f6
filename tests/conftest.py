"""Fixtures: real sandbox acquirers on 127.0.0.1 and the router app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.sandbox.server import SandboxServer
from router.app import create_app
from router.config import Config
from router.idempotency.protocol import Store

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
