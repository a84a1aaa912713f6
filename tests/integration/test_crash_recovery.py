"""A router process killed with SIGKILL mid-flight; the retry goes to another.

Exactly one charge, the same payment id, and the other acquirer untouched:
the second process resolves the dead one's open attempt where it was sent.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml

from adapters.sandbox.faults import FaultMode, FaultRule
from adapters.sandbox.server import SandboxServer
from router.ops.reconciler import shards_of
from router.payments.context import Caller
from router.store import keys
from router.store.ids import Ids
from router.store.keys import shard_of
from tests.helpers import (
    AUTH,
    DEMO_KEY,
    charges_by_reference,
    eventually,
    headers,
    sha,
    spawn_router,
    until,
)
from tests.procs.net import free_port
from tests.procs.redis import RedisProcess

SALE = {"amount": 4200, "currency": "EUR", "payment_method": "tok_visa"}
ROOT = Path(__file__).resolve().parents[2]


def _write_config(path: Path, redis_url: str, sandboxes: list[SandboxServer], **extra: Any) -> Path:
    config = {
        "store": {
            "kind": "redis",
            "url": redis_url,
            "op_timeout_s": 0.5,
            "id_secret": {"env": "PAYROUTER_ID_SECRET"},
        },
        "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
        "acquirers": {
            s.state.name: {
                "kind": "sandbox",
                "base_url": s.url,
                "timeouts": {"connect_s": 1, "read_s": 5},
            }
            for s in sandboxes
        },
        "routing": {"default": [s.state.name for s in sandboxes]},
        "payments": {"deadline_s": 1.5, "lease_s": 3, "same_acquirer_replays": 2},
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def start_router(tmp_path: Path) -> AsyncIterator[Callable[[Path], Any]]:
    procs: list[subprocess.Popen[bytes]] = []

    async def start(config: Path) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        proc = spawn_router(config, port, tmp_path / f"router-{port}.log")
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"{url}/readyz") as resp:
                        if resp.status == 200:
                            return proc, url
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("router did not become ready")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def test_a_router_killed_mid_flight_is_recovered_by_another_without_a_second_charge(
    tmp_path: Path,
    redis_server: RedisProcess,
    sandbox_factory: Any,
    start_router: Callable[[Path], Any],
) -> None:
    a: SandboxServer = await sandbox_factory("sandbox-a")
    b: SandboxServer = await sandbox_factory("sandbox-b")
    config = _write_config(tmp_path / "router.yaml", redis_server.url, [a, b])
    # sandbox-a takes the money, then keeps the reply to itself
    a.state.faults.replace([FaultRule(mode=FaultMode.TIMEOUT_AFTER_PROCESSING, count=1, hang_s=30)])
    first, first_url = await start_router(config)
    _, second_url = await start_router(config)

    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(
            session.post(f"{first_url}/v1/payments", json=SALE, headers=headers("crash-1"))
        )
        for _ in range(200):  # until sandbox-a has processed the charge
            if a.state.ledger:
                break
            await asyncio.sleep(0.01)
        assert len(a.state.ledger) == 1
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
        with pytest.raises(aiohttp.ClientError):
            await in_flight

        statuses = []
        for _ in range(100):  # the caller retries with the same key
            async with session.post(
                f"{second_url}/v1/payments", json=SALE, headers=headers("crash-1")
            ) as resp:
                statuses.append(resp.status)
                body = await resp.json(content_type=None)
                if resp.status != 409:
                    break
            await asyncio.sleep(0.2)

    assert statuses[0] == 409  # the dead owner's lease still held at first
    assert statuses[-1] == 201, body
    assert body["status"] == "captured"
    assert body["acquirer"] == "sandbox-a"
    assert b.state.requests_seen == 0
    assert charges_by_reference({"events": a.state.ledger}, {"events": b.state.ledger}) == {
        body["id"]: 1
    }


async def _reconcilers(redis: Any, count: int) -> list[str]:
    """The reconcilers Redis knows, once there are ``count`` of them."""

    async def members() -> list[str]:
        return sorted(m.decode() for m in await redis.zrange(keys.RECONCILERS, 0, -1))

    return await eventually(members, lambda found: len(found) == count, seconds=20)


async def _shares(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    found = re.search(r"^payrouter_reconciler_shards (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


async def test_a_killed_routers_shards_are_reconciled_by_the_one_left_with_no_retry(
    tmp_path: Path,
    redis_server: RedisProcess,
    sandbox_factory: Any,
    start_router: Callable[[Path], Any],
) -> None:
    a: SandboxServer = await sandbox_factory("sandbox-a")
    b: SandboxServer = await sandbox_factory("sandbox-b")
    config = _write_config(
        tmp_path / "router.yaml",
        redis_server.url,
        [a, b],
        reconciler={"interval_s": 0.2, "first_check_s": 0},
    )
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        first, first_url = await start_router(config)
        (first_member,) = await _reconcilers(redis, 1)
        _, second_url = await start_router(config)
        both = await _reconcilers(redis, 2)
    finally:
        await redis.aclose()
    first_shares = shards_of(first_member, both)
    # a key whose payment lands on a shard the first router sweeps
    key = next(
        k
        for k in (f"orphan-{n}" for n in range(1000))
        if Ids.shard_of_scope(Ids.scope(Caller("demo").tenant, k)) in first_shares
    )
    a.state.faults.replace([FaultRule(mode=FaultMode.TIMEOUT_AFTER_PROCESSING, count=1, hang_s=30)])

    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(
            session.post(f"{first_url}/v1/payments", json=SALE, headers=headers(key))
        )
        assert await until(lambda: bool(a.state.ledger), seconds=10)
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
        with pytest.raises(aiohttp.ClientError):
            await in_flight
        pid = a.state.ledger[0]["reference"]
        assert shard_of(pid) in first_shares  # not the survivor's until the first is gone

        async def state() -> str | None:
            async with session.get(f"{second_url}/v1/payments/{pid}", headers=AUTH) as resp:
                body = await resp.json(content_type=None)
            return str(body.get("status"))

        # nobody retries: only the survivor's reconciler can settle it
        assert await eventually(state, lambda s: s == "captured", seconds=30) == "captured"
        assert await _shares(session, second_url) == 64
    assert b.state.requests_seen == 0
    assert charges_by_reference({"events": a.state.ledger}, {"events": b.state.ledger}) == {pid: 1}


async def test_a_router_frozen_past_its_lease_cannot_write_when_it_thaws(
    tmp_path: Path,
    redis_server: RedisProcess,
    sandbox_factory: Any,
    start_router: Callable[[Path], Any],
) -> None:
    """SIGSTOP the owner mid-call for longer than its lease: another instance
    takes the payment over and finishes it; the thawed owner's late commit
    is refused, so it can neither charge again nor overwrite the answer."""
    a: SandboxServer = await sandbox_factory("sandbox-a")
    b: SandboxServer = await sandbox_factory("sandbox-b")
    config = _write_config(tmp_path / "router.yaml", redis_server.url, [a, b])
    a.state.faults.replace([FaultRule(mode=FaultMode.LATENCY, latency_ms=1500, count=1)])
    frozen, frozen_url = await start_router(config)
    _, live_url = await start_router(config)

    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(
            session.post(f"{frozen_url}/v1/payments", json=SALE, headers=headers("pause-1"))
        )
        assert await until(lambda: a.state.requests_seen == 1, seconds=10)
        frozen.send_signal(signal.SIGSTOP)
        try:
            statuses = []
            for _ in range(100):  # the caller gives up on the frozen one and retries
                async with session.post(
                    f"{live_url}/v1/payments", json=SALE, headers=headers("pause-1")
                ) as resp:
                    statuses.append(resp.status)
                    body = await resp.json(content_type=None)
                    if resp.status == 201:
                        break
                await asyncio.sleep(0.2)
        finally:
            frozen.send_signal(signal.SIGCONT)
        late = await in_flight
        late_body = await late.json(content_type=None)

    assert statuses[-1] == 201, statuses
    assert (body["status"], body["acquirer"]) == ("captured", "sandbox-a")
    assert late.status in (201, 409)  # the same answer, or told another owner has it
    if late.status == 201:
        assert (late_body["id"], late_body["status"]) == (body["id"], "captured")
    assert b.state.requests_seen == 0
    assert charges_by_reference({"events": a.state.ledger}, {"events": b.state.ledger}) == {
        body["id"]: 1
    }
