"""The test rig's stalled replication link holds back what it claims to, or
refuses to stall.

The replica reaches the primary through a proxy the tests stall.  The
sentinels see that the replica's master address (the proxy's) is not the
primary's and, ``failover-timeout`` later, point it at the primary itself;
a stall of the proxy after that would hold nothing back, and every test of
a lagging replica would pass without one."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.helpers import until
from tests.procs.redis import ReplicatedRedis, cli


async def test_a_stalled_link_holds_writes_back_until_resumed_and_a_late_stall_is_refused(
    replicated_redis: ReplicatedRedis,
) -> None:
    primary, replica, proxy = (
        replicated_redis.primary,
        replicated_redis.replica,
        replicated_redis.proxy,
    )
    assert replica is not None
    assert proxy is not None
    replicated_redis.stall_replication()
    async with Redis(port=primary.port) as writer:  # WAIT counts this connection's writes
        await writer.set("written-while-stalled", "1")
        assert await writer.wait(1, 500) == 0
        assert cli(replica.port, "EXISTS", "written-while-stalled").strip() == "0"
        proxy.resume()
        assert await writer.wait(1, 5000) == 1
    assert cli(replica.port, "EXISTS", "written-while-stalled").strip() == "1"

    repointed = f"master_port:{primary.port}"  # the sentinels' +fix-slave-config
    assert await until(
        lambda: repointed in cli(replica.port, "INFO", "replication").split(), seconds=30
    )
    with pytest.raises(AssertionError, match="pointed the replica at the primary itself"):
        replicated_redis.stall_replication()
