"""Rolling deploys: on SIGTERM the router says "not ready" first, keeps
serving through the drain period, lets requests in flight finish, and only
then stops; a client that keeps sending sees no error before the listener
is gone."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.helpers import DEMO_KEY, charges_by_reference, headers, sha, spawn_router, stop_router
from tests.procs.net import free_port

SALE = {"amount": 500, "currency": "EUR", "payment_method": "tok_visa"}


async def _up(url: str) -> None:
    for _ in range(400):
        try:
            async with aiohttp.ClientSession() as s, s.get(f"{url}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.05)
    raise AssertionError("the router never came up")


async def test_sigterm_turns_readiness_off_then_drains_then_stops(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    config = tmp_path / "r.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"shutdown_drain_s": 1.5, "shutdown_timeout_s": 10},
                "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
                "acquirers": {"sandbox-a": {"kind": "sandbox", "base_url": sandbox.url}},
                "routing": {"default": ["sandbox-a"]},
            }
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn_router(config, port)
    try:
        await _up(url)
        paid: list[str] = []
        answers: list[int] = []
        readiness: list[int] = []
        refused_at: int | None = None  # how many payments were answered before the first refusal
        slow: asyncio.Task[tuple[int, dict[str, Any]]] | None = None

        async def slow_payment() -> tuple[int, dict[str, Any]]:
            async with (
                aiohttp.ClientSession() as s,
                s.post(f"{url}/v1/payments", json=SALE, headers=headers("slow-1")) as resp,
            ):
                return resp.status, dict(await resp.json())

        proc.send_signal(signal.SIGTERM)
        for i in range(2000):
            try:
                async with aiohttp.ClientSession() as s:  # a new connection each time
                    async with s.get(f"{url}/readyz") as resp:
                        readiness.append(resp.status)
                    async with s.post(
                        f"{url}/v1/payments", json=SALE, headers=headers(f"k-{i}")
                    ) as resp:
                        answers.append(resp.status)
                        paid.append((await resp.json())["id"])
            except aiohttp.ClientConnectionError:
                refused_at = len(answers)
                break
            if slow is None and readiness[-1] == 503:
                # a payment that will still be running when the listener closes
                async with aiohttp.ClientSession() as other:
                    await other.put(
                        f"{sandbox.url}/_sandbox/faults",
                        json=[{"mode": "latency", "latency_ms": 2500, "count": 1}],
                    )
                slow = asyncio.create_task(slow_payment())
            await asyncio.sleep(0.02)
        assert refused_at is not None  # the listener did close
        assert readiness[0] == 503  # "not ready" came first...
        assert set(answers) == {201}  # ...and every request until the close was served
        assert len(answers) >= 10  # through the drain period
        assert slow is not None
        status, body = await slow
        assert (status, body["status"]) == (201, "captured")  # in flight: finished
        assert charges_by_reference({"events": sandbox.state.ledger}) == dict.fromkeys(
            [*paid, body["id"]], 1
        )
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        await stop_router(proc)


async def test_a_stop_while_starting_up_waits_for_the_start_and_exits_cleanly(
    tmp_path: Path,
) -> None:
    """A supervisor stops a worker that is still starting (a deploy right
    after a crash, a test that gives up): the stop is taken once the start
    has finished, not as a KeyboardInterrupt traceback out of asyncio."""
    with socket.socket() as silent:  # a "database" that takes the connection and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(30)
        config = tmp_path / "r.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
                    "acquirers": {"sandbox-a": {"kind": "sandbox", "embedded": True}},
                    "routing": {"default": ["sandbox-a"]},
                    "ledger": {
                        "kind": "postgres",
                        "url": f"postgresql://payrouter@127.0.0.1:{silent.getsockname()[1]}/p",
                        "timeout_s": 2,
                    },
                }
            )
        )
        log = tmp_path / "err.log"
        proc = spawn_router(config, free_port(), log=log)
        try:
            conn, _ = await asyncio.to_thread(silent.accept)  # it is starting: at the ledger
            with conn:
                proc.send_signal(signal.SIGINT)
                code = await asyncio.to_thread(proc.wait, 20)
        finally:
            await stop_router(proc)
    assert code == 0
    assert "Traceback" not in log.read_text()
    assert "KeyboardInterrupt" not in log.read_text()
