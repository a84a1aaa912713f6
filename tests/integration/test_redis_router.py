"""The router on real Redis: duplicates across instances, outages, restarts, Cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.base import Operation
from adapters.sandbox.server import SandboxServer
from router.http.keys import METRICS, RUNTIME
from router.payments.steps import Step, When
from tests.conftest import RouterFactory
from tests.helpers import AUTH, charges_by_reference, headers, make_config, until
from tests.procs.redis import RedisCluster, RedisProcess

Client = TestClient[Any, Any]
SALE = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}


def _redis_config(url: str, *sandboxes: SandboxServer) -> Any:
    return make_config(
        {s.state.name: s.url for s in sandboxes},
        store={"kind": "redis", "url": url, "op_timeout_s": 0.5},
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
    # the suite's 20 s lease, twice the callers' patience (10 s): a claim the
    # restart left held must be given back by the stranded-claims retry
    config = _redis_config(redis_server.url, a, b)
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


class KillRedisAt:
    """Crash-point hooks that take Redis down (SIGKILL) right before one step."""

    def __init__(self, redis: RedisProcess, operation: Operation, step: Step) -> None:
        self.redis, self.target, self.fired = redis, (operation, step, When.BEFORE), False

    def at(self, operation: Operation, step: Step, when: When) -> None:
        if not self.fired and (operation, step, when) == self.target:
            self.fired = True
            self.redis.kill()


async def test_a_claim_redis_could_not_release_is_released_once_redis_is_back(
    router_factory: RouterFactory,
    redis_server: RedisProcess,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    """The settle and then the release fail: without the background retry the
    caller's retries would get 409 until the 20 s lease ran out."""
    a, b = two_sandboxes
    hooks = KillRedisAt(redis_server, Operation.SALE, Step.SETTLE)
    client = await router_factory(_redis_config(redis_server.url, a, b), hooks=hooks)
    lost = await client.post("/v1/payments", json=SALE, headers=headers("stranded"))
    body = await lost.json(content_type=None)
    assert (lost.status, body["code"]) == (503, "outcome_not_recorded")
    stranded = client.app[RUNTIME].current.stranded
    assert len(stranded) == 1

    redis_server.start()  # same port, AOF replayed: the claim is still held by the lost request
    metrics = client.app[METRICS].registry
    released = {"result": "released"}
    await until(lambda: len(stranded) == 0, seconds=10)
    assert metrics.get_sample_value("payrouter_claims_stranded_total", released) == 1
    resp = await client.post("/v1/payments", json=SALE, headers=headers("stranded"))
    paid = await resp.json(content_type=None)
    assert (resp.status, paid["id"], paid["status"]) == (201, body["payment_id"], "captured")
    assert _charges(a, b) == {body["payment_id"]: 1}


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
