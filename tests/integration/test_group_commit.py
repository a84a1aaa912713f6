"""Durable journal writes share one WAIT per batch, against real redis-servers:
a primary and a replica behind a stalling link, so a WAIT can be held open
on demand; Sentinel, and a demotion without it, for where the primary is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions as rexc
import uvloop

from router.store.protocol import NotDurable
from router.store.redis.client import ScriptRunner, client_from_url, pipelined_from_url
from router.store.redis.group_commit import GroupCommitClient
from router.store.redis.multiplexed import MultiplexedClient
from tests.helpers import eventually, until
from tests.procs.proxy import StallingProxy
from tests.procs.redis import RedisProcess, ReplicatedRedis, cli


def _cli(port: int, *args: str) -> str:
    return cli(port, *args).strip()


pytestmark = pytest.mark.redis

#: one write and its reply: what a journal script looks like to the batch
INCR = "return redis.call('INCR', KEYS[1])"
SET = "return redis.call('SET', KEYS[1], ARGV[1])"

Run = Callable[[Coroutine[Any, Any, None]], None]
LOOPS: dict[str, Run] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


def _waits(port: int) -> int:
    """WAIT commands the server has answered."""
    for line in cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_wait:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def _blocked_in_wait(port: int) -> bool:
    return any(
        "cmd=wait" in line and "flags=b" in line
        for line in cli(port, "CLIENT", "LIST").splitlines()
    )


def _grouped(redis: ReplicatedRedis, wait_timeout_ms: int = 5_000) -> GroupCommitClient:
    client = pipelined_from_url(redis.primary.url, 2.0, replicas=1, wait_timeout_ms=wait_timeout_ms)
    assert isinstance(client, GroupCommitClient)
    return client


def _link(redis: ReplicatedRedis) -> StallingProxy:
    """The replica's way to the primary, which ``stall_replication`` stalls
    and the tests resume."""
    assert redis.proxy is not None
    return redis.proxy


async def _a_wait_held_open(
    redis: ReplicatedRedis, script: str, *first: str
) -> tuple[GroupCommitClient, str, asyncio.Future[tuple[Any, int]]]:
    """A client whose first batch, one script, is on the wire, its WAIT held
    open by the stalled replica link: (the client, the script's sha, that call)."""
    client = _grouped(redis)
    sha = await client.script_load(script)
    redis.stall_replication()
    call = asyncio.ensure_future(client.evalsha_waited(sha, 1, *first))
    assert await until(lambda: _blocked_in_wait(redis.primary.port), seconds=10)
    return client, sha, call


async def _held(client: GroupCommitClient, sha: str, *args: str) -> asyncio.Future[tuple[Any, int]]:
    """A script sent while the batch before it is on the wire: held, not sent."""
    call = asyncio.ensure_future(client.evalsha_waited(sha, 1, *args))
    await asyncio.sleep(0)  # a turn for it to reach the client, and be held there
    return call


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_scripts_sent_in_one_turn_share_one_wait(redis_server: RedisProcess, loop: str) -> None:
    async def scenario() -> None:
        client = GroupCommitClient("127.0.0.1", redis_server.port, replicas=0, wait_timeout_ms=100)
        sha = await client.script_load(INCR)
        before = _waits(redis_server.port)
        replies = await asyncio.gather(
            *(client.evalsha_waited(sha, 1, "counter") for _ in range(50))
        )
        assert sorted(reply for reply, _ in replies) == list(range(1, 51))
        assert {acked for _, acked in replies} == {0}  # no replica: WAIT 0 answers 0
        assert _waits(redis_server.port) - before == 1
        await client.aclose()

    LOOPS[loop](scenario())


async def test_each_script_of_a_batch_carries_the_replicas_acknowledgement(
    replicated_redis: ReplicatedRedis,
) -> None:
    client = _grouped(replicated_redis)
    sha = await client.script_load(INCR)
    before = _waits(replicated_redis.primary.port)
    replies = await asyncio.gather(*(client.evalsha_waited(sha, 1, "n") for _ in range(20)))
    assert sorted(replies) == [(n, 1) for n in range(1, 21)]
    assert _waits(replicated_redis.primary.port) - before == 1
    await client.aclose()


async def test_scripts_that_arrive_while_a_wait_is_out_go_together_in_the_next_batch(
    replicated_redis: ReplicatedRedis,
) -> None:
    port = replicated_redis.primary.port
    before = _waits(port)
    client, sha, first = await _a_wait_held_open(replicated_redis, INCR, "n")
    behind = [asyncio.ensure_future(client.evalsha_waited(sha, 1, "n")) for _ in range(30)]
    await asyncio.sleep(0)  # a turn for the held ones to be seen, and not sent
    assert _cli(port, "GET", "n") == "1"
    _link(replicated_redis).resume()
    assert await first == (1, 1)
    assert sorted(await asyncio.gather(*behind)) == [(n, 1) for n in range(2, 32)]
    assert _waits(port) - before == 2
    await client.aclose()


async def test_a_held_script_whose_caller_gave_up_is_never_sent(
    replicated_redis: ReplicatedRedis,
) -> None:
    port = replicated_redis.primary.port
    client, sha, first = await _a_wait_held_open(replicated_redis, SET, "first", "1")
    given_up = await _held(client, sha, "given-up", "1")
    given_up.cancel()
    _link(replicated_redis).resume()
    assert await first == ("OK", 1)
    assert await client.evalsha_waited(sha, 1, "after", "1") == ("OK", 1)
    assert (_cli(port, "EXISTS", "given-up"), _cli(port, "EXISTS", "after")) == ("0", "1")
    await client.aclose()


async def test_a_lost_connection_fails_the_batch_on_the_wire_and_the_one_held(
    replicated_redis: ReplicatedRedis,
) -> None:
    port = replicated_redis.primary.port
    client, sha, on_wire = await _a_wait_held_open(replicated_redis, SET, "on-wire", "1")
    held = await _held(client, sha, "held", "1")
    cli(port, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    for waiting in (on_wire, held):
        with pytest.raises(rexc.ConnectionError):
            await waiting
    _link(replicated_redis).resume()
    # the script on the wire ran (whether it did is what the caller cannot know);
    # the held one was never sent, and neither is sent again on the new connection
    assert await client.evalsha_waited(sha, 1, "next", "1") == ("OK", 1)
    assert [_cli(port, "EXISTS", key) for key in ("on-wire", "held", "next")] == ["1", "0", "1"]
    await client.aclose()


async def test_a_batch_no_replica_acknowledged_fails_closed_for_every_script_in_it(
    replicated_redis: ReplicatedRedis,
) -> None:
    url = replicated_redis.primary.url
    grouped = _grouped(replicated_redis, wait_timeout_ms=200)
    runner = ScriptRunner(client_from_url(url), replicas=1, wait_timeout_ms=200, grouped=grouped)
    script = runner.register(SET)
    await grouped.script_load(SET)  # else the first batch is NOSCRIPT, and a second one runs
    replicated_redis.stall_replication()
    before = _waits(replicated_redis.primary.port)
    outcomes = await asyncio.gather(
        *(runner.run(script, [f"k{n}"], ["v"], durable=True) for n in range(10)),
        return_exceptions=True,
    )
    assert [type(o) for o in outcomes] == [NotDurable] * 10
    assert _waits(replicated_redis.primary.port) - before == 1
    # written on the primary, not acknowledged: the caller fails closed, the data is there
    assert _cli(replicated_redis.primary.port, "EXISTS", *(f"k{n}" for n in range(10))) == "10"
    _link(replicated_redis).resume()
    assert await runner.run(script, ["k-after"], ["v"], durable=True) == "OK"
    await runner.close()


async def test_behind_sentinel_a_failover_moves_the_connection_to_the_new_primary(
    replicated_redis: ReplicatedRedis,
) -> None:
    """A switch-over: the old primary stays up, now a replica; the client
    finds the new one only by asking the sentinels again."""
    client = pipelined_from_url(replicated_redis.url, 1.0, replicas=1, wait_timeout_ms=2_000)
    assert isinstance(client, GroupCommitClient)
    sha = await client.script_load(SET)
    assert await client.evalsha_waited(sha, 1, "before", "1") == ("OK", 1)
    old, sentinel = replicated_redis.primary.port, replicated_redis.sentinel_ports[0]
    # NOGOODSLAVE until the sentinels have a fresh report from the replica
    failover = ("SENTINEL", "FAILOVER", ReplicatedRedis.SERVICE)
    assert await until(lambda: _cli(sentinel, *failover) == "OK", seconds=20, every=0.5)
    assert await until(lambda: replicated_redis.primary_port() != old, seconds=20)
    assert await until(lambda: "role:slave" in cli(old, "INFO", "replication"), seconds=20)

    async def written() -> bool:
        try:
            await client.script_load(SET)
            return await client.evalsha_waited(sha, 1, "after", "1") == ("OK", 1)
        except rexc.ConnectionError:
            return False

    assert await eventually(written, bool, seconds=20)
    assert (client.host, client.port) == ("127.0.0.1", replicated_redis.primary_port())
    assert _cli(replicated_redis.primary_port(), "GET", "after") == "1"
    await client.aclose()


async def test_a_demoted_primary_drops_the_connection_and_the_next_command_finds_the_new_one(
    tmp_path: Any,
) -> None:
    old, new = RedisProcess(tmp_path / "old"), RedisProcess(tmp_path / "new")
    old.start()
    new.start()
    try:
        where = [old.port]

        async def locate() -> tuple[str, int]:
            return "127.0.0.1", where[0]

        client = MultiplexedClient("", 0, locate=locate)
        assert await client.execute("SET", "k", "on-old") == "OK"
        admin = aioredis.Redis(port=old.port)
        await admin.replicaof("127.0.0.1", new.port)
        await admin.aclose()
        where[0] = new.port
        with pytest.raises(rexc.ConnectionError, match="demoted"):
            await client.execute("SET", "k", "refused")
        assert await client.execute("SET", "k", "on-new") == "OK"
        assert _cli(new.port, "GET", "k") == "on-new"
        await client.aclose()
    finally:
        old.stop()
        new.stop()
