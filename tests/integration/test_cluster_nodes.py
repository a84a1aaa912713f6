"""A Cluster's scripts go to the key's primary over pipelined clients: when
the slot moves, or is migrating, under a client that still points at the old
owner, the script runs once, on the node that owns the key, or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.commands.core import AsyncScript
from redis.exceptions import SlotNotCoveredError

from router.store.protocol import NotDurable, StoreUnavailable
from router.store.redis.client import ScriptRunner, client_from_url, redis_boundary
from tests.helpers import eventually
from tests.procs.redis import RedisCluster, cli

pytestmark = pytest.mark.redis

INCR = "return redis.call('INCR', KEYS[1])"
PROBE = "return redis.call('EXISTS', KEYS[1])"


@pytest.fixture(scope="module")
def moving_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A cluster of its own, durable: these tests move slots (each test its own)
    and kill a node."""
    cluster = RedisCluster(Path(tmp_path_factory.mktemp("moving")), durable=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _masters(cluster: RedisCluster) -> dict[int, str]:
    """port -> node id."""
    out = cli(cluster.nodes[0].port, "CLUSTER", "NODES")
    return {
        int(line.split()[1].split("@")[0].rsplit(":", 1)[1]): line.split()[0]
        for line in out.splitlines()
        if "master" in line.split()[2]
    }


def _slot(cluster: RedisCluster, key: str) -> int:
    return int(cli(cluster.nodes[0].port, "CLUSTER", "KEYSLOT", key))


def _owner(cluster: RedisCluster, slot: int) -> int:
    for port in _masters(cluster):
        if _serves(port, slot):
            return port
    raise AssertionError(f"nobody serves slot {slot}")


def _serves(port: int, slot: int) -> bool:
    for line in cli(port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if "myself" in fields[2]:
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return True
    return False


def _hand_over(cluster: RedisCluster, slot: int, port: int) -> None:
    target = _masters(cluster)[port]
    for node in cluster.nodes:
        cli(node.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target)


def _other(cluster: RedisCluster, port: int) -> int:
    return next(p for p in _masters(cluster) if p != port)


def _where(cluster: RedisCluster, key: str) -> tuple[int, int, int]:
    """(the key's slot, the port of its owner, the port of another primary)."""
    slot = _slot(cluster, key)
    owner = _owner(cluster, slot)
    return slot, owner, _other(cluster, owner)


async def _opened(
    cluster: RedisCluster, key: str, *, replicas: int = 0
) -> tuple[ScriptRunner, AsyncScript, tuple[int, int, int]]:
    """A runner whose client of the key's owner is open (a read has gone
    there), its INCR script, and :func:`_where` the key is."""
    runner = ScriptRunner(client_from_url(cluster.url), replicas=replicas, wait_timeout_ms=50)
    probe = runner.register(PROBE)
    assert await runner.run(probe, [key], [], durable=False) == 0
    if replicas:  # the waited client too; no replicas here, so its WAIT says 0
        with pytest.raises(NotDurable):
            await runner.run(probe, [key], [], durable=True)
    return runner, runner.register(INCR), _where(cluster, key)


def _get(port: int, key: str) -> str:
    return cli(port, "GET", key).strip()


async def test_a_script_sent_to_a_primary_that_lost_its_slot_runs_once_on_the_new_owner(
    moving_cluster: RedisCluster,
) -> None:
    key = "{moved-alone}n"
    runner, incr, (slot, old, new) = await _opened(moving_cluster, key)
    _hand_over(moving_cluster, slot, new)
    assert await runner.run(incr, [key], [], durable=False) == 1
    assert (_get(new, key), _serves(old, slot)) == ("1", False)
    await runner.close()


async def test_a_waited_script_after_a_moved_slot_runs_once_and_is_judged_by_its_own_wait(
    moving_cluster: RedisCluster,
) -> None:
    """No replicas here: the write lands on the new owner, and its WAIT says 0."""
    key = "{moved-waited}n"
    runner, incr, (slot, _, new) = await _opened(moving_cluster, key, replicas=1)
    _hand_over(moving_cluster, slot, new)
    with pytest.raises(NotDurable):
        await runner.run(incr, [key], [], durable=True)
    assert _get(new, key) == "1"
    await runner.close()


def _migrate(cluster: RedisCluster, slot: int, source: int, target: int) -> None:
    ids = _masters(cluster)
    cli(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", ids[source])
    cli(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", ids[target])


async def test_during_a_migration_a_script_for_a_key_that_left_runs_on_the_importing_node(
    moving_cluster: RedisCluster,
) -> None:
    key = "{asked-alone}n"
    runner, incr, (slot, source, target) = await _opened(moving_cluster, key)
    _migrate(moving_cluster, slot, source, target)
    assert await runner.run(incr, [key], [], durable=False) == 1  # ASK: redis-py sends ASKING
    _hand_over(moving_cluster, slot, target)  # the migration ends
    assert _get(target, key) == "1"
    await runner.close()


async def test_during_a_migration_a_waited_script_for_a_key_that_left_runs_on_the_importing_node(
    moving_cluster: RedisCluster,
) -> None:
    """Behind ASKING, in the importing node's next batch; no replicas here,
    so its WAIT says 0: written once, there, and judged not durable."""
    key = "{asked-waited}n"
    runner, incr, (slot, source, target) = await _opened(moving_cluster, key, replicas=1)
    _migrate(moving_cluster, slot, source, target)
    with pytest.raises(NotDurable):
        await runner.run(incr, [key], [], durable=True)
    _hand_over(moving_cluster, slot, target)
    assert _get(target, key) == "1"
    await runner.close()


async def test_a_primary_that_dies_answers_503_and_is_used_again_once_it_is_back(
    moving_cluster: RedisCluster,
) -> None:
    runner = ScriptRunner(client_from_url(moving_cluster.url), op_timeout_s=0.5)
    incr = runner.register(INCR)
    key = "{killed}n"
    assert await runner.run(incr, [key], [], durable=False) == 1
    port = _owner(moving_cluster, _slot(moving_cluster, key))
    node = next(n for n in moving_cluster.nodes if n.port == port)
    node.kill()
    try:
        with pytest.raises(StoreUnavailable):
            await runner.run(incr, [key], [], durable=False)
    finally:
        node.start()

    async def counted() -> object:
        try:
            return await runner.run(incr, [key], [], durable=False)
        except StoreUnavailable:
            return None

    # the node is back with its AOF: the one write that was answered is kept
    assert await eventually(counted, lambda n: n is not None, seconds=20) == 2
    await runner.close()


async def test_a_fresh_runners_first_waited_script_finds_its_primary(
    moving_cluster: RedisCluster,
) -> None:
    """redis-py reads the slot map on its first command; a waited script can
    be the first (found by 14-cluster-failover: the node lookup raised
    SlotNotCoveredError, which was a 500)."""
    runner = ScriptRunner(client_from_url(moving_cluster.url), replicas=1, wait_timeout_ms=50)
    incr = runner.register(INCR)
    with pytest.raises(NotDurable):  # it ran, on the right primary; no replica to say so
        await runner.run(incr, ["{fresh}n"], [], durable=True)
    _, owner, _ = _where(moving_cluster, "{fresh}n")
    assert _get(owner, "{fresh}n") == "1"
    await runner.close()


async def test_a_slot_nobody_serves_is_store_unavailable_not_a_crash() -> None:
    with pytest.raises(StoreUnavailable, match="SlotNotCoveredError"):
        async with redis_boundary():
            raise SlotNotCoveredError('Slot "1" is not covered by the cluster.')
