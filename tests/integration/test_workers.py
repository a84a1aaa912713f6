"""Several router processes on one port, sharing Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from router.ops.workers import EXIT_CANNOT_START
from tests.helpers import (
    DEMO_KEY,
    ROOT,
    charges_by_reference,
    eventually,
    headers,
    sha,
    spawn_router,
    stop_router,
)
from tests.procs.net import free_port
from tests.procs.redis import RedisProcess

SALE = {"amount": 500, "currency": "EUR", "payment_method": "tok_visa"}


async def _workers_answering(url: str, workers: int) -> set[int]:
    """The pids that answered /healthz on fresh connections, once ``workers``
    of them have (or after 400 tries): the workers start listening apart
    (0.1-0.35 s measured on an idle machine), and a test that needs both must
    wait for the slower."""
    pids: set[int] = set()
    for _ in range(400):
        try:
            # a new session, so a new connection each time
            async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/healthz") as resp:
                pids.add((await resp.json())["pid"])
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.05)  # none is listening yet
        if len(pids) == workers:
            break
    return pids


def _config(path: Path, store: dict[str, Any], acquirers: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "store": store,
                "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
                "acquirers": acquirers,
                "routing": {"default": list(acquirers)},
            }
        )
    )
    return path


async def test_two_workers_share_one_port_and_one_journal(
    tmp_path: Path,
    redis_server: RedisProcess,
    sandbox_factory: Any,
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    config = _config(
        tmp_path / "r.yaml",
        {"kind": "redis", "url": redis_server.url, "id_secret": {"env": "PAYROUTER_ID_SECRET"}},
        {"sandbox-a": {"kind": "sandbox", "base_url": sandbox.url}},
    )
    port = free_port()
    parent = spawn_router(config, port, extra=("--workers", "2"))
    try:
        url = f"http://127.0.0.1:{port}"
        assert len(await _workers_answering(url, 2)) == 2

        async with aiohttp.ClientSession() as session:

            async def pay(i: int) -> tuple[int, str]:
                async with session.post(
                    f"{url}/v1/payments", json=SALE, headers=headers(f"w-{i % 10}")
                ) as resp:
                    return resp.status, (await resp.json(content_type=None)).get("id", "")

            results = await asyncio.gather(*(pay(i) for i in range(40)))
        assert {status for status, _ in results} <= {201, 409}
        ids = {pid for status, pid in results if status == 201}
        assert charges_by_reference({"events": sandbox.state.ledger}) == dict.fromkeys(ids, 1)
        assert len(ids) == 10
    finally:
        assert await stop_router(parent) == 0


def test_workers_refuse_a_config_they_cannot_share(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "r.yaml", {"kind": "memory"}, {"a": {"kind": "sandbox", "embedded": True}}
    )
    out = subprocess.run(
        [sys.executable, "-m", "router.cli", "serve", "--config", str(config), "--workers", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "store.kind must be redis" in out.stderr
    assert "embedded sandbox acquirers" in out.stderr


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_busy_port_makes_the_router_exit_at_once_with_the_reason(
    tmp_path: Path, redis_server: RedisProcess, workers: int
) -> None:
    config = _config(
        tmp_path / "r.yaml",
        {"kind": "redis", "url": redis_server.url, "id_secret": {"env": "PAYROUTER_ID_SECRET"}},
        {"sandbox-a": {"kind": "sandbox", "base_url": "http://127.0.0.1:9"}},
    )
    with socket.socket() as taken:  # someone else's listener, without SO_REUSEPORT
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "err.log"
        proc = spawn_router(config, port, log=log, extra=("--workers", str(workers)))
        try:
            code = await asyncio.to_thread(proc.wait, 20)
        finally:
            await stop_router(proc)
    assert code == EXIT_CANNOT_START
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in log.read_text()
    assert "Traceback" not in log.read_text()


def _scraped(text: str) -> tuple[float, set[str]]:
    """Payments answered 201 in this scrape, and the worker that answered it."""
    created, workers = 0.0, set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "payrouter_http_requests_total" and labels.get("status") == "201":
                created += sample.value if labels.get("route") == "/v1/payments" else 0
            if sample.name == "payrouter_acquirer_healthy":
                workers.add(labels["worker"])
    return created, workers


async def test_two_workers_answer_one_consistent_metrics_scrape(
    tmp_path: Path, redis_server: RedisProcess, sandbox_factory: Any
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    config = _config(
        tmp_path / "r.yaml",
        {"kind": "redis", "url": redis_server.url, "id_secret": {"env": "PAYROUTER_ID_SECRET"}},
        {"sandbox-a": {"kind": "sandbox", "base_url": sandbox.url}},
    )
    port = free_port()
    parent = spawn_router(config, port, extra=("--workers", "2"))
    url = f"http://127.0.0.1:{port}"
    try:
        # both listening first: else one worker can take every payment and
        # every scrape while the other is still starting (seen in CI)
        assert len(await _workers_answering(url, 2)) == 2
        ids: list[str] = []
        for sent in range(30):  # fresh connections, so the kernel spreads them over both workers
            async with (
                aiohttp.ClientSession() as fresh,
                fresh.post(f"{url}/v1/payments", json=SALE, headers=headers(f"m-{sent}")) as resp,
            ):
                assert resp.status == 201
                ids.append((await resp.json())["id"])
        totals, answered_by = [], set()
        for _ in range(40):
            async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/metrics") as resp:
                created, workers = _scraped(await resp.text())
            totals.append(created)
            answered_by |= workers
            if len(answered_by) == 2 and len(totals) >= 10:
                break
        assert answered_by == {"1", "2"}  # both workers answered scrapes...
        assert set(totals) == {30.0}  # ...and every scrape counted every payment
        assert charges_by_reference({"events": sandbox.state.ledger}) == dict.fromkeys(ids, 1)
    finally:
        assert await stop_router(parent) == 0


ADMIN_KEY = "sk_admin_fleet"


async def test_a_drain_and_a_reload_reach_every_worker(
    tmp_path: Path, redis_server: RedisProcess, sandbox_factory: Any
) -> None:
    a, b = await sandbox_factory("sandbox-a"), await sandbox_factory("sandbox-b")
    path = tmp_path / "r.yaml"

    def write(weight: int) -> None:
        data = yaml.safe_load(
            _config(
                path,
                {
                    "kind": "redis",
                    "url": redis_server.url,
                    "id_secret": {"env": "PAYROUTER_ID_SECRET"},
                },
                {
                    "sandbox-a": {"kind": "sandbox", "base_url": a.url, "weight": weight},
                    "sandbox-b": {"kind": "sandbox", "base_url": b.url},
                },
            ).read_text()
        )
        data["admin"] = {"api_key_sha256": [sha(ADMIN_KEY)]}
        data["server"] = {"watch_config_s": 0}  # only the reload request may reload
        path.write_text(yaml.safe_dump(data))

    write(1)
    port = free_port()
    parent = spawn_router(path, port, extra=("--workers", "2"))
    url = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def fleet() -> dict[str, Any]:
        for _ in range(200):
            try:
                async with (
                    aiohttp.ClientSession() as fresh,
                    fresh.get(f"{url}/admin/fleet", headers=admin) as resp,
                ):
                    return dict(await resp.json())
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        raise AssertionError("the router never answered")

    try:
        view = await eventually(fleet, lambda v: len(v["instances"]) == 2, seconds=20)
        assert {i["worker"] for i in view["instances"]} == {"1", "2"}

        async with (  # one worker gets the call
            aiohttp.ClientSession() as one,
            one.post(f"{url}/admin/acquirers/sandbox-a/drain", headers=admin) as r,
        ):
            assert (r.status, (await r.json())["scope"]) == (200, "fleet")
        view = await eventually(
            fleet,
            lambda v: all(i["drained"] == ["sandbox-a"] for i in v["instances"]),
            seconds=10,
        )
        assert view["drained"] == ["sandbox-a"]
        assert [i["drained"] for i in view["instances"]] == [["sandbox-a"], ["sandbox-a"]]

        seen_by_a = len(a.state.ledger)
        for i in range(20):  # fresh connections: both workers take payments
            async with (
                aiohttp.ClientSession() as fresh,
                fresh.post(
                    f"{url}/v1/payments", json=SALE, headers=headers(f"after-drain-{i}")
                ) as resp,
            ):
                assert (resp.status, (await resp.json())["acquirer"]) == (201, "sandbox-b")
        assert len(a.state.ledger) == seen_by_a

        before = {i["config_version"] for i in view["instances"]}
        write(5)
        async with (
            aiohttp.ClientSession() as one,
            one.post(f"{url}/admin/config/reload", headers=admin) as r,
        ):
            answer = await r.json()
        assert (r.status, answer["changed"]) == (200, True)
        view = await eventually(
            fleet,
            lambda v: {i["config_version"] for i in v["instances"]} == {answer["version"]},
            seconds=10,
        )
        assert {i["config_version"] for i in view["instances"]} == {answer["version"]}
        assert answer["version"] not in before
        assert {i["generation"] for i in view["instances"]} == {answer["generation"]}
    finally:
        assert await stop_router(parent) == 0


#: a stand-in worker: says it is up, then on SIGINT exits 0, except worker 2
_WORKER = """
import os, signal, sys, pathlib
def stop(*_):
    sys.exit(1 if os.environ["PAYROUTER_WORKER"] == "2" else 0)
signal.signal(signal.SIGINT, stop)
pathlib.Path(sys.argv[1], os.environ["PAYROUTER_WORKER"]).touch()
signal.pause()
"""


def test_the_supervisor_exits_non_zero_when_a_worker_did_not_stop_cleanly(
    tmp_path: Path,
) -> None:
    worker = [sys.executable, "-c", _WORKER, str(tmp_path)]
    run = "import sys; from router.ops.workers import Supervisor as S; "
    run += f"sys.exit(S({worker!r}, 2).run())"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", run], cwd=ROOT, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 20
        while {p.name for p in tmp_path.iterdir()} != {"1", "2"} and time.monotonic() < deadline:
            time.sleep(0.05)
        # both stand-ins handle SIGINT by now: one not yet started would exit 1
        # on a KeyboardInterrupt and pass the test for the wrong reason
        assert {p.name for p in tmp_path.iterdir()} == {"1", "2"}
        supervisor.send_signal(signal.SIGINT)
        _, err = supervisor.communicate(timeout=20)
    finally:
        if supervisor.poll() is None:  # no stand-in outlives the test
            os.killpg(supervisor.pid, signal.SIGKILL)
    assert supervisor.returncode == 1
    assert "workers that did not stop cleanly" in err.decode()
