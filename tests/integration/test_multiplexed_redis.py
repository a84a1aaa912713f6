"""The payment path's one pipelined Redis connection, against a real redis-server.

Each behaviour runs on asyncio's own loop and on uvloop (the one ``serve``
uses): the two hand a protocol different transport classes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions as rexc
import uvloop

from router.store.redis.multiplexed import MultiplexedClient
from tests.procs.redis import RedisProcess

pytestmark = pytest.mark.redis

Run = Callable[[Coroutine[Any, Any, None]], None]
LOOPS: dict[str, Run] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Run:
    return LOOPS[request.param]


async def _kill_clients_named(server: RedisProcess, name: str) -> None:
    admin = aioredis.Redis(port=server.port, decode_responses=True)
    try:
        for client in await admin.client_list():
            if client["cmd"] == name:
                await admin.client_kill_filter(_id=client["id"])
    finally:
        await admin.aclose()


def test_concurrent_callers_each_get_their_own_reply(redis_server: RedisProcess, run: Run) -> None:
    async def scenario() -> None:
        client = MultiplexedClient.from_url(redis_server.url)
        texts = [f"payment-{i}" for i in range(500)]
        replies = await asyncio.gather(*(client.execute("ECHO", t) for t in texts))
        assert replies == texts
        await client.aclose()

    run(scenario())


def test_a_caller_that_gives_up_leaves_its_reply_to_be_dropped(
    redis_server: RedisProcess, run: Run
) -> None:
    async def scenario() -> None:
        client = MultiplexedClient.from_url(redis_server.url, timeout_s=5)
        blocked = asyncio.ensure_future(client.execute("BLPOP", "nothing", "0.3"))
        await asyncio.sleep(0.05)  # the BLPOP is on the wire before the cancel
        blocked.cancel()
        # queued behind the BLPOP's nil: must get its own reply, not the nil
        assert await client.execute("ECHO", "mine") == "mine"
        assert await client.execute("ECHO", "and mine") == "and mine"
        await client.aclose()

    run(scenario())


def test_a_connection_without_a_reply_in_time_is_dropped_and_the_next_command_reconnects(
    redis_server: RedisProcess, run: Run
) -> None:
    async def scenario() -> None:
        client = MultiplexedClient.from_url(redis_server.url, timeout_s=0.2)
        stuck = asyncio.ensure_future(client.execute("BLPOP", "nothing", "5"))
        await asyncio.sleep(0.1)
        behind = asyncio.ensure_future(client.execute("ECHO", "queued behind it"))
        for waiting in (
            stuck,
            behind,
        ):  # both fail with the connection (the BLPOP's own nil comes later)
            with pytest.raises(rexc.TimeoutError):
                await waiting
        assert await client.execute("ECHO", "again") == "again"
        await client.aclose()

    run(scenario())


def test_a_command_whose_connection_is_lost_fails_and_is_not_sent_again(
    redis_server: RedisProcess, run: Run
) -> None:
    async def scenario() -> None:
        client = MultiplexedClient.from_url(redis_server.url)
        waiting = asyncio.ensure_future(client.execute("BLPOP", "lost-key", "5"))
        await asyncio.sleep(0.05)
        await _kill_clients_named(redis_server, "blpop")
        with pytest.raises(rexc.ConnectionError):
            await waiting
        # had it been resent, it would have consumed the value pushed now
        await client.execute("RPUSH", "lost-key", "v")
        assert await client.execute("LRANGE", "lost-key", "0", "-1") == ["v"]
        await client.aclose()

    run(scenario())


def test_error_replies_raise_the_classes_redis_py_raises(
    redis_server: RedisProcess, run: Run
) -> None:
    async def scenario() -> None:
        client = MultiplexedClient.from_url(redis_server.url)
        with pytest.raises(rexc.NoScriptError):
            await client.evalsha("0" * 40, 0)
        with pytest.raises(rexc.ResponseError, match="unknown command"):
            await client.execute("NO-SUCH-COMMAND")
        sha = await client.script_load("return ARGV[1]")
        assert await client.evalsha(sha, 0, "answered") == "answered"
        await client.aclose()

    run(scenario())


def test_a_server_that_is_down_is_a_connection_error(redis_server: RedisProcess, run: Run) -> None:
    redis_server.kill()

    async def scenario() -> None:
        client = MultiplexedClient.from_url(redis_server.url, connect_timeout_s=0.5)
        with pytest.raises(rexc.ConnectionError):
            await client.execute("PING")

    run(scenario())
    redis_server.start()

    async def after_restart() -> None:
        client = MultiplexedClient.from_url(redis_server.url)
        assert await client.execute("PING") == "PONG"
        await client.aclose()

    run(after_restart())


def test_the_url_chooses_database_and_credentials(redis_server: RedisProcess, run: Run) -> None:
    server = redis_server

    async def scenario() -> None:
        admin = aioredis.Redis(port=server.port)
        await admin.config_set("requirepass", "s3cret")
        await admin.aclose()
        try:
            url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
            client = MultiplexedClient.from_url(url)
            await client.execute("SET", "where", "db3")
            direct = aioredis.Redis(
                port=server.port, db=3, password="s3cret", decode_responses=True
            )
            assert await direct.get("where") == "db3"
            await direct.aclose()
            await client.aclose()
            wrong = MultiplexedClient.from_url(url.replace("s3cret", "wrong"))
            with pytest.raises(rexc.AuthenticationError):
                await wrong.execute("PING")
        finally:  # the fixture's teardown talks to it without a password
            admin = aioredis.Redis(port=server.port, password="s3cret")
            await admin.config_set("requirepass", "")
            await admin.aclose()

    run(scenario())
