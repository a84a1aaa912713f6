"""Exactly once through a Redis failover, on a primary, a replica behind a
stalling link and three sentinels: journal writes wait for the replica
before money moves, an unacknowledged write fails closed, and a failover to
a replica that lagged loses no accepted payment and charges none twice."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from adapters.sandbox.server import SandboxServer
from router.config import Config
from tests.conftest import RouterFactory
from tests.helpers import AUTH, charges_by_reference, headers, make_config, until
from tests.procs.redis import ReplicatedRedis, cli

Client = TestClient[Any, Any]
SALE = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}


def _config(redis: ReplicatedRedis, *sandboxes: SandboxServer, replicas: int = 1) -> Config:
    return make_config(
        {s.state.name: s.url for s in sandboxes},
        store={
            "kind": "redis",
            "url": redis.url,
            "op_timeout_s": 1.0,
            "durability": {"replicas": replicas, "timeout_ms": 300},
            "failover_check_s": 60,
        },
        payments={"lease_s": 2, "deadline_s": 5},
    )


def _charges(*sandboxes: SandboxServer) -> dict[str, int]:
    return charges_by_reference(*({"events": s.state.ledger} for s in sandboxes))


async def test_a_write_ahead_no_replica_acknowledged_fails_closed_and_nothing_is_sent(
    router_factory: RouterFactory,
    replicated_redis: ReplicatedRedis,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    a, b = two_sandboxes
    client = await router_factory(_config(replicated_redis, a, b))
    assert replicated_redis.proxy is not None
    replicated_redis.stall_replication()
    resp = await client.post("/v1/payments", json=SALE, headers=headers("k-1"))
    body = await resp.json(content_type=None)
    assert (resp.status, body["code"]) == (503, "store_unavailable")
    assert resp.headers["Retry-After"] == "1"
    assert a.state.requests_seen + b.state.requests_seen == 0
    replicated_redis.proxy.resume()
    resp = await client.post("/v1/payments", json=SALE, headers=headers("k-1"))
    paid = await resp.json()
    assert (resp.status, paid["status"]) == (201, "captured")
    assert _charges(a, b) == {paid["id"]: 1}


async def test_noreplicas_from_a_primary_that_must_not_write_alone_is_a_503(
    router_factory: RouterFactory,
    tmp_path: Any,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    redis = ReplicatedRedis(
        tmp_path / "strict",
        extra=("--min-replicas-to-write", "1", "--min-replicas-max-lag", "1"),
    )
    await redis.start()
    try:
        a, b = two_sandboxes
        client = await router_factory(_config(redis, a, b, replicas=0))
        assert redis.proxy is not None
        redis.stall_replication()
        assert await until(
            lambda: "min_slaves_good_slaves:0" in cli(redis.primary.port, "INFO", "replication"),
            seconds=15,
        )
        resp = await client.post("/v1/payments", json=SALE, headers=headers("k-1"))
        body = await resp.json(content_type=None)
        assert (resp.status, body["code"]) == (503, "store_unavailable")
        assert a.state.requests_seen + b.state.requests_seen == 0
    finally:
        await redis.close()


async def _pay_until_final(
    routers: list[Client], key: str, outcomes: dict[str, tuple[int, dict[str, Any]]]
) -> list[int]:
    """A well-behaved caller: retries 503, 409 and 202 with the same key."""
    seen: list[int] = []
    for attempt in range(300):
        client = routers[attempt % len(routers)]
        resp = await client.post("/v1/payments", json=SALE, headers=headers(key))
        body = await resp.json(content_type=None)
        seen.append(resp.status)
        if resp.status == 201:
            outcomes[key] = (resp.status, body)
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"{key} never completed: {seen[-10:]}")


async def test_a_failover_to_a_lagging_replica_loses_nothing_and_charges_nothing_twice(
    router_factory: RouterFactory,
    replicated_redis: ReplicatedRedis,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    a, b = two_sandboxes
    config = _config(replicated_redis, a, b)
    routers = [await router_factory(config), await router_factory(config)]
    await routers[0].session.put(
        f"{a.url}/_sandbox/faults", json=[{"mode": "latency", "latency_ms": 20}]
    )
    outcomes: dict[str, tuple[int, dict[str, Any]]] = {}
    seen: list[int] = []
    done = asyncio.Event()
    assert replicated_redis.proxy is not None
    proxy = replicated_redis.proxy

    async def chaos() -> None:
        assert await until(lambda: len(outcomes) >= 10, seconds=20)
        replicated_redis.stall_replication()  # the replica falls behind ...
        await asyncio.sleep(1.0)  # ... while payments go on ...
        await replicated_redis.fail_over()  # ... and is promoted without the latest writes
        proxy.resume()
        done.set()

    async def caller(n: int) -> None:
        """Pays one payment after another until the failover is over, and a few more."""
        extra = 0
        for i in range(1000):
            seen.extend(await _pay_until_final(routers, f"c{n}-{i}", outcomes))
            extra += done.is_set()
            if extra > 3:
                return

    await asyncio.gather(chaos(), *(caller(n) for n in range(6)))
    assert set(seen) <= {201, 202, 409, 503}  # never a 500
    ids = [body["id"] for _, body in outcomes.values()]
    assert len(ids) >= 30
    assert _charges(a, b) == dict.fromkeys(ids, 1)
    for key, (_, body) in outcomes.items():  # every accepted payment is still there, as answered
        resp = await routers[0].get(f"/v1/payments/{body['id']}", headers=AUTH)
        stored = await resp.json(content_type=None)
        assert (resp.status, stored.get("status")) == (200, body["status"]), key
