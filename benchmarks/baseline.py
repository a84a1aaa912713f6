"""The baseline the router is measured against: the least a journaled proxy
with idempotency can do.  Two Redis writes per payment -- SET NX claims the
key before the acquirer is called, SET stores the answer after -- one call
to the acquirer, the answer passed through.  No routing, no records, no
metrics, no logs.

``--client multiplexed`` sends the two writes over the router's own
pipelined connection (router.store.redis.multiplexed) instead of redis-py,
so the router can also be compared with a bare proxy on the same client."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from router.store.redis.multiplexed import MultiplexedClient


class Writes(Protocol):
    async def execute_command(self, *args: Any) -> Any: ...
    async def aclose(self) -> None: ...


class _Multiplexed:
    def __init__(self, url: str) -> None:
        self.client = MultiplexedClient.from_url(url)

    async def execute_command(self, *args: Any) -> Any:
        return await self.client.execute(*args)

    async def aclose(self) -> None:
        await self.client.aclose()


SESSION = web.AppKey("session", aiohttp.ClientSession)
REDIS = web.AppKey("redis", Writes)
UPSTREAM = web.AppKey("upstream", str)


async def pay(request: web.Request) -> web.Response:
    key = request.headers.get("Idempotency-Key", "")
    body = await request.read()
    redis = request.app[REDIS]
    claimed = await redis.execute_command("SET", f"base:{key}", "claimed", "NX", "PX", 86_400_000)
    if not claimed:
        return web.json_response({"code": "duplicate"}, status=409)
    async with request.app[SESSION].post(
        f"{request.app[UPSTREAM]}/v1/charges",
        data=body,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    ) as resp:
        answer = await resp.read()
        status = resp.status
    await redis.execute_command("SET", f"base:{key}", b"%d " % status + answer, "PX", 86_400_000)
    return web.Response(status=status, body=answer, content_type="application/json")


def create_app(redis_url: str, upstream: str, client: str = "redis-py") -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream

    async def resources(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession()
        app[REDIS] = (
            _Multiplexed(redis_url)
            if client == "multiplexed"
            else aioredis.Redis.from_url(redis_url)
        )
        yield
        await app[SESSION].close()
        await app[REDIS].aclose()

    app.cleanup_ctx.append(resources)
    app.router.add_post("/v1/payments", pay)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--client", choices=["redis-py", "multiplexed"], default="redis-py")
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(
        create_app(args.redis, args.upstream, args.client),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
