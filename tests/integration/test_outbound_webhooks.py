"""Outbound webhooks through Redis Streams to a real subscriber on loopback."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.sandbox.server import SandboxServer
from adapters.signing import verify_timestamped
from router.cli import main
from router.http.keys import LOOPS
from router.payments.records import now_ms
from router.store.redis.client import client_from_url
from router.store.redis.store import RedisStore
from router.webhooks.queue import Delivery, RedisDeliveryQueue
from tests.conftest import RouterFactory
from tests.helpers import DEMO_KEY, ID_SECRET_ENV, eventually, headers, make_config, sha, until
from tests.procs.redis import RedisProcess

SALE = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}
SECRET = "whsec_internal_0123456789"
ADMIN = {"Authorization": "Bearer sk_admin"}


class Subscriber:
    """An internal service that is down for its first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests = 0
        self.received: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/hooks", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.requests <= self.fail_first:
            return web.Response(status=500)
        body = await request.read()
        verify_timestamped(request.headers.get("Payrouter-Signature"), body, [SECRET])
        self.received.append({"body": orjson.loads(body), "headers": dict(request.headers)})
        return web.Response(status=204)

    def event_ids(self) -> set[str]:
        return {r["body"]["id"] for r in self.received}


@pytest.fixture
async def subscriber_server() -> AsyncIterator[tuple[Subscriber, str]]:
    subscriber = Subscriber()
    server = TestServer(subscriber.app, host="127.0.0.1")
    await server.start_server()
    yield subscriber, str(server.make_url("/hooks"))
    await server.close()


def _config(redis_url: str, sandbox: SandboxServer, hook_url: str, **webhooks: Any) -> Any:
    return make_config(
        {"sandbox-a": sandbox.url},
        store={"kind": "redis", "url": redis_url},
        admin={"api_key_sha256": [sha("sk_admin")]},
        webhooks={
            "subscribers": {
                "ledger": {
                    "url": hook_url,
                    "events": ["payment.*"],
                    "secret": {"env": "HOOK_SECRET", "value": SECRET},
                }
            },
            "backoff_base_s": 0.02,
            "backoff_max_s": 0.1,
            **webhooks,
        },
    )


async def test_a_subscriber_down_for_a_while_still_gets_every_event_signed(
    router_factory: RouterFactory,
    redis_server: RedisProcess,
    sandbox_factory: Any,
    subscriber_server: tuple[Subscriber, str],
) -> None:
    subscriber, url = subscriber_server
    subscriber.fail_first = 5
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(_config(redis_server.url, sandbox, url))
    ids = []
    for i in range(3):
        resp = await client.post("/v1/payments", json=SALE, headers=headers(f"k{i}"))
        ids.append((await resp.json())["id"])
    assert await until(lambda: len(subscriber.event_ids()) == 3, seconds=10)
    assert {r["body"]["data"]["id"] for r in subscriber.received} == set(ids)
    assert {r["body"]["type"] for r in subscriber.received} == {"payment.captured"}
    assert subscriber.requests > 3  # the failures were retried
    first = subscriber.received[0]["headers"]
    assert first["Payrouter-Event-Id"] == subscriber.received[0]["body"]["id"]
    assert int(first["Payrouter-Delivery-Attempt"]) >= 1


async def test_past_the_retry_window_a_delivery_is_dead_lettered_then_redelivered(
    router_factory: RouterFactory,
    redis_server: RedisProcess,
    sandbox_factory: Any,
    subscriber_server: tuple[Subscriber, str],
) -> None:
    subscriber, url = subscriber_server
    subscriber.fail_first = 10**6
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(_config(redis_server.url, sandbox, url, retry_window_s=0.3))
    await client.post("/v1/payments", json=SALE, headers=headers("dl-1"))

    async def dead() -> list[dict[str, Any]]:
        body = await (await client.get("/admin/webhooks/dead", headers=ADMIN)).json()
        return list(body["dead_letters"])

    letters = await eventually(dead, bool, seconds=5)
    assert len(letters) == 1
    assert letters[0]["attempts"] > 1
    assert "retry window exhausted" in letters[0]["reason"]

    subscriber.fail_first = 0  # the service is back
    resp = await client.post("/admin/webhooks/redeliver", headers=ADMIN, json={})
    assert (await resp.json())["redelivered"] == 1
    assert await until(lambda: len(subscriber.received) == 1, seconds=10)
    assert await dead() == []


async def test_two_instances_share_one_queue_and_deliver_each_event(
    router_factory: RouterFactory,
    redis_server: RedisProcess,
    sandbox_factory: Any,
    subscriber_server: tuple[Subscriber, str],
) -> None:
    subscriber, url = subscriber_server
    sandbox = await sandbox_factory("sandbox-a")
    config = _config(redis_server.url, sandbox, url)
    routers = [await router_factory(config), await router_factory(config)]
    for i in range(10):
        await routers[i % 2].post("/v1/payments", json=SALE, headers=headers(f"two-{i}"))
    assert await until(lambda: len(subscriber.event_ids()) == 10, seconds=10)
    queue = RedisDeliveryQueue(client_from_url(redis_server.url))
    try:
        assert await eventually(queue.size, lambda n: n == 0, seconds=10) == 0  # all acked
    finally:
        await queue.client.aclose()
    assert len(subscriber.received) == 10  # once each while nothing fails


async def test_a_delivery_held_by_a_dead_instance_is_claimed_by_a_live_one(
    router_factory: RouterFactory,
    redis_server: RedisProcess,
    sandbox_factory: Any,
    subscriber_server: tuple[Subscriber, str],
) -> None:
    subscriber, url = subscriber_server
    outbox = RedisDeliveryQueue(client_from_url(redis_server.url))
    body = orjson.dumps({"id": "evt_orphan", "type": "payment.captured", "data": {}}).decode()
    await outbox.enqueue([Delivery("evt_orphan", "payment.captured", "ledger", body, 0, now_ms())])
    assert len(await outbox.fetch("instance-that-died", 10, 100)) == 1  # and it never acks
    sandbox = await sandbox_factory("sandbox-a")
    await router_factory(_config(redis_server.url, sandbox, url, claim_idle_s=0.2))
    assert await until(lambda: subscriber.event_ids() == {"evt_orphan"}, seconds=10)
    await outbox.client.aclose()


async def test_the_cli_lists_and_redelivers_dead_letters(
    tmp_path: Path,
    redis_server: RedisProcess,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ID_SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    store = RedisStore(client_from_url(redis_server.url), 60_000)
    outbox = RedisDeliveryQueue(store.client)
    delivery = Delivery("evt_dead", "payment.failed", "ledger", "{}", 3, now_ms())
    await outbox.enqueue([delivery])
    [(entry_id, _)] = await outbox.fetch("c", 1, 100)
    await outbox.bury(entry_id, delivery, "retry window exhausted")
    config = tmp_path / "router.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {
                    "kind": "redis",
                    "url": redis_server.url,
                    "id_secret": {"env": "PAYROUTER_ID_SECRET"},
                },
                "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
                "acquirers": {"a": {"kind": "sandbox", "base_url": "http://127.0.0.1:9"}},
                "routing": {"default": ["a"]},
            }
        )
    )
    assert (
        await asyncio.to_thread(main, ["webhooks", "redeliver", "--config", str(config), "--list"])
        == 0
    )
    assert "evt_dead" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["webhooks", "redeliver", "--config", str(config)]) == 0
    assert "redelivered 1" in capsys.readouterr().out
    assert await outbox.dead_letters(10) == []
    await store.close()


async def test_after_redis_comes_back_empty_deliveries_go_on(
    router_factory: RouterFactory,
    tmp_path: Path,
    sandbox_factory: Any,
    subscriber_server: tuple[Subscriber, str],
) -> None:
    """The consumer groups vanish with the data (NOGROUP); they are created
    again and the events of new payments are delivered."""
    subscriber, url = subscriber_server
    redis = RedisProcess(tmp_path / "volatile", durable=False)
    redis.start()
    try:
        sandbox = await sandbox_factory("sandbox-a")
        client = await router_factory(_config(redis.url, sandbox, url))
        await client.post("/v1/payments", json=SALE, headers=headers("before"))
        assert await until(lambda: len(subscriber.event_ids()) == 1, seconds=10)
        await asyncio.to_thread(redis.restart)  # nothing persisted: it comes back empty
        paid = await eventually(
            functools.partial(client.post, "/v1/payments", json=SALE, headers=headers("after")),
            lambda resp: resp.status == 201,
            seconds=10,
        )
        after = (await paid.json())["id"]
        assert await until(
            lambda: after in {r["body"]["data"]["id"] for r in subscriber.received}, seconds=10
        )
        assert (await client.get("/readyz")).status == 200
    finally:
        redis.stop()


async def test_a_background_loop_that_stopped_makes_the_instance_unready(
    router_factory: RouterFactory, sandbox_factory: Any
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(make_config({"sandbox-a": sandbox.url}))
    assert (await client.get("/readyz")).status == 200
    client.app[LOOPS].tasks["webhooks"].cancel()
    resp = await eventually(
        functools.partial(client.get, "/readyz"), lambda r: r.status == 503, seconds=5
    )
    assert (resp.status, (await resp.json())["dead_loops"]) == (503, ["webhooks"])
