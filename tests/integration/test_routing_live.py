"""Routing and resilience with live sandboxes: outages, brownouts, soft declines,
drains, and config reloads under load."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from adapters.sandbox.server import SandboxServer
from router.http.keys import RUNTIME
from router.store.memory import MemoryStore
from tests.conftest import RouterFactory
from tests.helpers import (
    DEMO_KEY,
    charges_by_reference,
    eventually,
    headers,
    make_config,
    sha,
    until,
)

Client = TestClient[Any, Any]
SALE = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}
ADMIN_KEY = "sk_admin_test"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
FAST_HEALTH = {"interval_s": 0.1, "timeout_s": 0.2, "rise": 1, "fall": 1}


def _config(sandboxes: tuple[SandboxServer, ...], **routing: Any) -> Any:
    config = make_config(
        {s.state.name: s.url for s in sandboxes},
        routing=routing,
        admin={"api_key_sha256": [sha(ADMIN_KEY)]},
    )
    acquirers = {
        name: acq.model_copy(
            update={
                "health": acq.health.model_copy(update=FAST_HEALTH),
                "breaker": acq.breaker.model_copy(update={"reset_timeout_s": 0.5}),
            }
        )
        for name, acq in config.acquirers.items()
    }
    return config.model_copy(update={"acquirers": acquirers})


async def _pay(client: Client, key: str, body: dict[str, Any] = SALE) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/payments", json=body, headers=headers(key))
    return resp.status, await resp.json(content_type=None)


async def test_an_acquirer_going_down_shifts_traffic_within_one_health_interval(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    """sandbox-a starts refusing connections between two payments (a request cut
    off *in flight* is a different story: an honest unknown, see test_failover)."""
    a, _ = two_sandboxes
    store = MemoryStore()
    client = await router_factory(_config(two_sandboxes), store=store)
    statuses: list[int] = []
    after_outage: list[str] = []
    outage = asyncio.Event()
    between_payments = asyncio.Lock()

    async def load() -> None:
        for i in range(60):
            async with between_payments:
                status, body = await _pay(client, f"load-{i}")
            statuses.append(status)
            if outage.is_set():
                after_outage.append(body["id"])
            await asyncio.sleep(0.01)

    health = client.app[RUNTIME].current.acquirers["sandbox-a"].health

    async def take_a_down() -> None:
        assert await until(lambda: len(statuses) >= 10, seconds=10)
        async with between_payments:
            await a.stop_listening()
        assert await until(lambda: not health.healthy, seconds=5)  # the probes noticed
        outage.set()

    await asyncio.gather(load(), take_a_down())
    assert statuses == [201] * 60  # zero failed payments
    assert after_outage
    for payment_id in after_outage:  # no attempt even reached for sandbox-a any more
        payment = await store.get_payment(payment_id)
        assert payment is not None
        assert [att.acquirer for att in payment.attempts] == ["sandbox-b"]
    report = await (await client.get("/admin/acquirers", headers=ADMIN)).json()
    state = {r["name"]: r for r in report["acquirers"]}
    assert state["sandbox-a"]["healthy"] is False
    assert state["sandbox-a"]["routable"] is False

    await a.resume_listening()  # and it comes back into rotation
    keys = iter(range(1000))

    async def pay_again() -> str:
        return str((await _pay(client, f"back-{next(keys)}"))[1]["acquirer"])

    assert await eventually(pay_again, lambda placed: placed == "sandbox-a", seconds=10) == (
        "sandbox-a"
    )


async def test_a_brownout_moves_least_latency_traffic_away(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    a, b = two_sandboxes
    # no exploration: its random share of traffic (tested on its own) would make this
    # a bet on the dice, not a test of the latency signal
    config = _config(two_sandboxes, balancer="least_latency", exploration=0)
    client = await router_factory(config)
    warm = [(await _pay(client, f"warm-{i}"))[1]["id"] for i in range(10)]
    await client.session.put(
        f"{a.url}/_sandbox/faults", json=[{"mode": "latency", "latency_ms": 150}]
    )
    paid = [(await _pay(client, f"brown-{i}"))[1] for i in range(30)]
    placed = [body["acquirer"] for body in paid]
    assert placed[-20:] == ["sandbox-b"] * 20
    assert charges_by_reference({"events": a.state.ledger}, {"events": b.state.ledger}) == (
        dict.fromkeys(warm + [body["id"] for body in paid], 1)
    )


async def test_a_soft_decline_is_retried_once_at_another_acquirer(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    a, b = two_sandboxes
    client = await router_factory(_config(two_sandboxes, soft_decline_codes=["issuer_unavailable"]))
    await client.session.put(
        f"{a.url}/_sandbox/faults", json=[{"mode": "decline", "decline_code": "issuer_unavailable"}]
    )
    status, body = await _pay(client, "soft-1")
    assert (status, body["status"], body["acquirer"]) == (201, "captured", "sandbox-b")

    await client.session.put(
        f"{a.url}/_sandbox/faults", json=[{"mode": "decline", "decline_code": "do_not_honor"}]
    )
    seen_by_b = b.state.requests_seen
    status, body = await _pay(client, "hard-1")
    assert (status, body["status"], body["decline_code"]) == (201, "declined", "do_not_honor")
    assert b.state.requests_seen == seen_by_b  # a hard decline is never retried elsewhere


async def test_a_soft_retried_decline_shows_the_normalized_and_the_raw_code(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    a, _ = two_sandboxes
    # configured by category: whatever dialect the acquirer speaks
    client = await router_factory(_config(two_sandboxes, soft_decline_categories=["soft"]))
    await client.session.put(
        f"{a.url}/_sandbox/faults", json=[{"mode": "decline", "decline_code": "91"}]
    )
    status, body = await _pay(client, "soft-raw-1")
    assert (status, body["status"], body["acquirer"]) == (201, "captured", "sandbox-b")
    first, second = body["attempts"]
    assert (first["acquirer"], first["decline"]) == (
        "sandbox-a",
        {"code": "issuer_unavailable", "raw_code": "91", "category": "soft"},
    )
    assert (second["acquirer"], second["decline"]) == ("sandbox-b", None)


async def test_soft_decline_retries_stop_at_the_cap(
    router_factory: RouterFactory, sandbox_factory: Any
) -> None:
    sandboxes = tuple([await sandbox_factory(f"s{i}") for i in range(3)])
    client = await router_factory(
        _config(sandboxes, soft_decline_codes=["try_again_later"], max_soft_decline_retries=1)
    )
    for s in sandboxes:
        s.state.faults.replace([])
        await client.session.put(
            f"{s.url}/_sandbox/faults",
            json=[{"mode": "decline", "decline_code": "try_again_later"}],
        )
    status, body = await _pay(client, "cap-1")
    assert (status, body["status"]) == (201, "declined")
    assert [s.state.requests_seen for s in sandboxes] == [1, 1, 0]


async def test_drain_takes_an_acquirer_out_of_new_payments_only(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    client = await router_factory(_config(two_sandboxes))
    status, auth = await _pay(client, "auth-1", SALE | {"capture": False})
    assert status == 201
    assert auth["acquirer"] == "sandbox-a"
    resp = await client.post("/admin/acquirers/sandbox-a/drain", headers=ADMIN)
    assert (resp.status, (await resp.json())["drained"]) == (200, True)
    assert (await _pay(client, "new-1"))[1]["acquirer"] == "sandbox-b"
    capture = await client.post(
        f"/v1/payments/{auth['id']}/capture", json={}, headers=headers("cap-1")
    )
    assert capture.status == 200  # pinned: the funds are at sandbox-a
    await client.post("/admin/acquirers/sandbox-a/undrain", headers=ADMIN)
    assert (await _pay(client, "new-2"))[1]["acquirer"] == "sandbox-a"


async def test_the_admin_api_needs_its_own_credential(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    client = await router_factory(_config(two_sandboxes))
    assert (await client.get("/admin/acquirers")).status == 401
    caller = {"Authorization": f"Bearer {DEMO_KEY}"}
    resp = await client.get("/admin/acquirers", headers=caller)
    assert (resp.status, (await resp.json(content_type=None))["code"]) == (403, "forbidden")
    report = await (await client.get("/admin/acquirers", headers=ADMIN)).json()
    first = report["acquirers"][0]
    assert {"healthy", "breaker", "weight", "latency_ewma_ms", "error_rate", "drained"} <= set(
        first
    )
    assert first["breaker"] == "closed"


# ------------------------------------------------------------------ reloads


async def _config_info(client: Client) -> dict[str, Any]:
    return dict(await (await client.get("/admin/config", headers=ADMIN)).json())


def _write(path: Path, sandboxes: tuple[SandboxServer, ...], **extra: Any) -> None:
    config: dict[str, Any] = {
        "server": {"watch_config_s": extra.pop("watch", 0)},
        "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
        "admin": {"api_key_sha256": [sha(ADMIN_KEY)]},
        "acquirers": {
            s.state.name: {
                "kind": "sandbox",
                "base_url": s.url,
                "weight": extra.get("weights", {}).get(s.state.name, 1),
            }
            for s in sandboxes
        },
        "routing": {"default": [s.state.name for s in sandboxes], "balancer": "weighted"},
    }
    path.write_text(yaml.safe_dump(config))


async def _reloading_client(
    tmp_path: Path,
    router_factory: RouterFactory,
    sandboxes: tuple[SandboxServer, ...],
    watch: float = 0,
) -> tuple[Client, Path]:
    from router.config import load_config

    path = tmp_path / "router.yaml"
    _write(path, sandboxes, watch=watch)
    return await router_factory(load_config(path), config_path=str(path)), path


async def test_a_reload_under_load_loses_no_request(
    tmp_path: Path,
    router_factory: RouterFactory,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    client, path = await _reloading_client(tmp_path, router_factory, two_sandboxes)
    stranded = client.app[RUNTIME].current.stranded  # claims still to be closed
    versions = set()

    async def reloads() -> None:
        for i in range(6):
            weights = {"sandbox-a": 1 + i % 2 * 9, "sandbox-b": 1}
            _write(path, two_sandboxes, weights=weights)
            resp = await client.post("/admin/config/reload", headers=ADMIN)
            body = await resp.json()
            assert body["ok"], body
            versions.add(body["version"])
            await asyncio.sleep(0.02)

    async def worker(n: int) -> list[int]:
        return [(await _pay(client, f"w{n}-{i}"))[0] for i in range(15)]

    _, *statuses = await asyncio.gather(reloads(), *(worker(n) for n in range(4)))
    assert all(status == 201 for each in statuses if each for status in each)
    assert sum(len(each or []) for each in statuses) == 60
    assert len(versions) == 2  # alternating weights: two distinct configs
    info = await (await client.get("/admin/config", headers=ADMIN)).json()
    assert info["version"] in versions
    assert client.app[RUNTIME].current.stranded is stranded  # outlives every reload


async def test_an_invalid_config_is_refused_with_its_reason_and_the_old_one_stays(
    tmp_path: Path,
    router_factory: RouterFactory,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    client, path = await _reloading_client(tmp_path, router_factory, two_sandboxes)
    before = (await (await client.get("/admin/config", headers=ADMIN)).json())["version"]
    path.write_text(path.read_text().replace("balancer: weighted", "balancer: fastest"))
    resp = await client.post("/admin/config/reload", headers=ADMIN)
    body = await resp.json()
    assert resp.status == 422
    assert not body["ok"]
    assert "routing.balancer" in body["error"]
    info = await (await client.get("/admin/config", headers=ADMIN)).json()
    assert info["version"] == before
    assert "routing.balancer" in info["last_reload_error"]
    assert (await _pay(client, "still-works"))[0] == 201


async def test_a_changed_file_is_picked_up_by_the_watcher(
    tmp_path: Path,
    router_factory: RouterFactory,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    client, path = await _reloading_client(tmp_path, router_factory, two_sandboxes, watch=0.05)
    before = (await (await client.get("/admin/config", headers=ADMIN)).json())["version"]
    await asyncio.sleep(0.05)
    _write(path, two_sandboxes, watch=0.05, weights={"sandbox-a": 7})
    info = await eventually(
        functools.partial(_config_info, client), lambda i: i["version"] != before, seconds=5
    )
    assert info["version"] != before


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
async def test_sighup_reloads_the_config(
    tmp_path: Path,
    router_factory: RouterFactory,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    client, path = await _reloading_client(tmp_path, router_factory, two_sandboxes)
    before = (await (await client.get("/admin/config", headers=ADMIN)).json())["version"]
    _write(path, two_sandboxes, weights={"sandbox-b": 4})
    os.kill(os.getpid(), signal.SIGHUP)  # handled by the router's loop, not the default action
    info = await eventually(
        functools.partial(_config_info, client),
        lambda i: i["version"] != before,
        seconds=2,
        every=0.02,
    )
    assert info["version"] != before
