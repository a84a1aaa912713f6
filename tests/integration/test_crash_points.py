"""The crash-point matrix of tests/payments/test_crash_points.py on real parts:
a redis-server process (or a primary whose journal writes wait for its
replica, one WAIT per batch), sandbox acquirers over HTTP, two router
instances.

The owner dies (a SimulatedCrash: nothing after the point runs, its lease is
not released) right before or right after each store step and acquirer call;
the retry goes through another instance once the lease ran out, and the
answer and the records must equal the sandbox ledgers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from adapters.sandbox.server import SandboxServer
from router.ops.build import build_runtime
from router.payments.steps import NO_HOOKS, Hooks, SimulatedCrash, Step, When
from router.runtime import Runtime
from router.store.redis.store import RedisStore
from router.telemetry.metrics import Metrics
from tests.helpers import charges_by_reference, eventually, make_config, redis_store
from tests.payments.harness import CrashAt
from tests.payments.test_crash_points import CASES, Scenario, _operation, _prepare
from tests.procs.redis import RedisProcess, cli

LEASE_S = 0.3

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def primary_with_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A primary and a replica that follows it, shared by the cases (each
    flushes it first: the cases reuse idempotency keys)."""
    workdir = Path(tmp_path_factory.mktemp("replicated"))
    primary = RedisProcess(workdir / "primary")
    primary.start()
    follows = ("--replicaof", "127.0.0.1", str(primary.port))
    replica = RedisProcess(workdir / "replica", extra=follows)
    try:
        replica.start()
        deadline = time.monotonic() + 30  # the first sync of an empty primary: milliseconds
        while "master_link_status:up" not in cli(replica.port, "INFO", "replication"):
            if time.monotonic() > deadline:
                raise RuntimeError("the replica never caught up with the primary")
            time.sleep(0.01)
        yield primary
    finally:
        replica.stop()
        primary.stop()


@pytest.fixture(params=["one server", "primary with replica"])
def store_url(request: pytest.FixtureRequest) -> tuple[str, int]:
    """(the URL, the replicas each journal write waits for)."""
    if request.param == "one server":
        return request.getfixturevalue("redis_server").url, 0
    primary: RedisProcess = request.getfixturevalue("primary_with_replica")
    cli(primary.port, "FLUSHALL")
    return primary.url, 1


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _runtime(
    store: RedisStore,
    session: aiohttp.ClientSession,
    sandboxes: tuple[SandboxServer, ...],
    hooks: Hooks = NO_HOOKS,
) -> Runtime:
    config = make_config(
        {s.state.name: s.url for s in sandboxes},
        store=redis_store("redis://unused"),
        payments={"lease_s": LEASE_S, "deadline_s": 5},
    )
    return build_runtime(config, store, store, session, {}, metrics=Metrics(), hooks=hooks)


@pytest.mark.parametrize(("scenario", "step", "when"), CASES)
async def test_an_owner_killed_at_any_step_is_finished_by_another_instance(
    scenario: Scenario,
    step: Step,
    when: When,
    store_url: tuple[str, int],
    session: aiohttp.ClientSession,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    a, b = two_sandboxes
    if scenario.name == "sale-after-failover":
        await session.put(f"{a.url}/_sandbox/faults", json=[{"mode": "unavailable", "count": 1}])
    url, replicas = store_url
    store = RedisStore.from_url(url, 3_600_000, replicas=replicas)
    try:
        healthy = _runtime(store, session, two_sandboxes)
        payment_id = await _prepare(healthy, scenario)
        crash = CrashAt(scenario.operation, step, when)
        dying = _runtime(store, session, two_sandboxes, crash)
        with pytest.raises(SimulatedCrash):
            await _operation(dying, scenario, payment_id)
        assert crash.fired
        # the caller retries, as callers do, until the dead owner's lease ran out
        result = await eventually(
            functools.partial(_operation, healthy, scenario, payment_id),
            lambda r: r.status != 409,
            seconds=5,
        )
        again = await _operation(healthy, scenario, payment_id)
    finally:
        await store.close()

    status, state = scenario.expect
    assert (result.status, result.body["status"]) == (status, state), result.body
    assert (again.status, again.body["status"], again.replayed) == (status, state, True)
    ledgers = ({"events": a.state.ledger}, {"events": b.state.ledger})
    kinds = [e["kind"] for ledger in ledgers for e in ledger["events"]]
    expected_kind = {"sale": "sale", "capture": "capture", "void": "void", "refund": "refund"}
    assert kinds.count(expected_kind[scenario.operation.value]) == 1
    if scenario.operation.creates:
        assert charges_by_reference(*ledgers) == {result.body["id"]: 1}
