"""The router on real Redis: duplicates across instances, outages, restarts, Cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.sandbox.server import SandboxServer
from tests.conftest import RouterFactory
from tests.helpers import AUTH, charges_by_reference, headers, make_config
from tests.procs.redis import RedisCluster, RedisProcess

Client = TestClient[Any, Any]
SALE = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}


def _redis_config(url: str, *sandboxes: SandboxServer, **sections: Any) -> Any:
    return make_config(
        {s.state.name: s.url for s in sandboxes},
        store={"kind": "redis", "url": url, "op_timeout_s": 0.5},
        **sections,
    )


def _charges(*sandboxes: SandboxServer) -> dict[str, int]:
    return charges_by_reference(*({"events": s.state.ledger} for s in sandboxes))


async def test_concurrent_duplicates_across_two_instances_charge_exactly_once(
    router_factory: RouterFactory,
    redis_server: RedisProcess,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    a, b = two_sandboxes
    config = _redis_config(redis_server.url, a, b)
    routers = [await router_factory(config), await router_factory(config)]
    await routers[0].session.put(
        f"{a.url}/_sandbox/faults", json=[{"mode": "latency", "latency_ms": 300}]
    )

    async def pay(i: int) -> tuple[int, dict[str, Any]]:
        resp = await routers[i % 2].post("/v1/payments", json=SALE, headers=headers("dup-1"))
        return resp.status, await resp.json(content_type=None)

    results = await asyncio.gather(*(pay(i) for i in range(30)))
    statuses = [s for s, _ in results]
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) >= 1
    ids = {body["id"] for s, body in results if s == 201}
    assert len(ids) == 1
    assert _charges(a, b) == {ids.pop(): 1}


async def test_with_redis_down_mutations_fail_closed_and_no_acquirer_is_called(
    router_factory: RouterFactory,
    redis_server: RedisProcess,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    a, b = two_sandboxes
    client = await router_factory(_redis_config(redis_server.url, a, b))
    ok = await client.post("/v1/payments", json=SALE, headers=headers("before"))
    pid = (await ok.json())["id"]
    seen_before = a.state.requests_seen + b.state.requests_seen

    redis_server.kill()
    resp = await client.post("/v1/payments", json=SALE, headers=headers("during"))
    body = await resp.json(content_type=None)
    assert (resp.status, body["code"]) == (503, "store_unavailable")
    assert resp.headers["Retry-After"] == "1"
    assert a.state.requests_seen + b.state.requests_seen == seen_before
    read = await client.get(f"/v1/payments/{pid}", headers=AUTH)
    assert (read.status, (await read.json(content_type=None))["code"]) == (503, "store_unavailable")
    assert (await client.get("/readyz")).status == 503

    redis_server.start()  # same port, AOF replayed; the router reconnects by itself
    assert (await client.get("/readyz")).status == 200
    read = await client.get(f"/v1/payments/{pid}", headers=AUTH)
    assert (await read.json())["status"] == "captured"
    resp = await client.post("/v1/payments", json=SALE, headers=headers("during"))
    assert resp.status == 201


async def test_a_redis_restart_mid_run_loses_no_payment_and_charges_none_twice(
    router_factory: RouterFactory,
    redis_server: RedisProcess,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    a, b = two_sandboxes
    # a request whose answer could not be recorded while Redis was down could
    # not release its claim either: its retries get 409 until the lease runs
    # out, so the lease is short enough for the callers' patience (10 s)
    config = _redis_config(redis_server.url, a, b, payments={"lease_s": 2})
    client = await router_factory(config)
    await client.session.put(
        f"{a.url}/_sandbox/faults", json=[{"mode": "latency", "latency_ms": 20}]
    )
    outcomes: dict[str, tuple[int, str]] = {}

    async def pay_until_final(key: str) -> None:
        """A well-behaved caller: retries 503 and 409 with the same key."""
        for _ in range(200):
            resp = await client.post("/v1/payments", json=SALE, headers=headers(key))
            body = await resp.json(content_type=None)
            assert resp.status < 500 or resp.status == 503, body
            if resp.status in (201, 202):
                outcomes[key] = (resp.status, body["id"])
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{key} never completed")

    async def restart_redis() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(redis_server.restart)

    await asyncio.gather(restart_redis(), *(pay_until_final(f"load-{i}") for i in range(40)))
    assert len(outcomes) == 40
    assert {status for status, _ in outcomes.values()} == {201}
    charged = _charges(a, b)
    assert charged == {pid: 1 for _, pid in outcomes.values()}


async def test_concurrent_refunds_on_redis_never_exceed_the_capture(
    router_factory: RouterFactory,
    redis_server: RedisProcess,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    a, b = two_sandboxes
    config = _redis_config(redis_server.url, a, b)
    routers = [await router_factory(config), await router_factory(config)]
    resp = await routers[0].post(
        "/v1/payments", json=SALE | {"amount": 1000}, headers=headers("sale")
    )
    pid = (await resp.json())["id"]

    async def refund(i: int) -> int:
        r = await routers[i % 2].post(
            f"/v1/payments/{pid}/refunds", json={"amount": 400}, headers=headers(f"refund-{i}")
        )
        return r.status

    statuses = await asyncio.gather(*(refund(i) for i in range(8)))
    assert sorted(statuses) == [201, 201] + [422] * 6
    refunded = sum(e["amount"] for e in a.state.ledger if e["kind"] == "refund")
    assert refunded == 800


@pytest.mark.parametrize("flow", ["sale-refund", "auth-capture-void"])
async def test_the_whole_lifecycle_runs_on_a_three_node_cluster(
    router_factory: RouterFactory,
    redis_cluster: RedisCluster,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
    flow: str,
) -> None:
    a, b = two_sandboxes
    client = await router_factory(_redis_config(redis_cluster.url, a, b))
    if flow == "sale-refund":
        resp = await client.post("/v1/payments", json=SALE, headers=headers(f"{flow}-1"))
        pid = (await resp.json())["id"]
        refund = await client.post(
            f"/v1/payments/{pid}/refunds", json={}, headers=headers(f"{flow}-2")
        )
        assert refund.status == 201
        final = await (await client.get(f"/v1/payments/{pid}", headers=AUTH)).json()
        assert final["status"] == "refunded"
    else:
        resp = await client.post(
            "/v1/payments", json=SALE | {"capture": False}, headers=headers(f"{flow}-1")
        )
        pid = (await resp.json())["id"]
        cap = await client.post(
            f"/v1/payments/{pid}/capture", json={"amount": 10}, headers=headers(f"{flow}-2")
        )
        assert (await cap.json())["captured_amount"] == 10
        void = await client.post(f"/v1/payments/{pid}/void", json={}, headers=headers(f"{flow}-3"))
        assert (void.status, (await void.json())["code"]) == (409, "void_not_allowed")
    replay = await client.post(
        "/v1/payments",
        json=SALE | ({"capture": False} if flow != "sale-refund" else {}),
        headers=headers(f"{flow}-1"),
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
