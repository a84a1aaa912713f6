"""A Cluster's primaries, each behind pipelined connections of its own.

Why: each script routed through redis-py's cluster client cost the router
about 100 us more than on a pipelined client (a payment's two: 998 -> 780 us
of router CPU, ``benchmarks/README.md``, "Redis").  Each payment's keys
share one hash tag, so both its scripts go to one primary, over the same
pipelined clients a single server gets (:mod:`router.store.redis.multiplexed`,
:mod:`router.store.redis.group_commit`).

Where a slot lives stays redis-py's business: the node for a key is read
from its slot map, and when a node refuses (``MOVED``, ``ASK``) or fails,
a read of the key through redis-py's own routing lets it follow the
redirect or refresh the map, as it does for its own commands.  Nothing
here parses the topology.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from router.store.redis.group_commit import GroupCommitClient
from router.store.redis.multiplexed import MultiplexedClient

#: what redis-py's routing can raise while it learns; the caller's own error is what counts
_LEARN_ERRORS = (rexc.RedisError, rexc.RedisClusterException, OSError)


class NodePipes:
    """Pipelined clients by (primary, waited), opened on first use."""

    def __init__(
        self, cluster: RedisCluster, *, op_timeout_s: float, replicas: int, wait_timeout_ms: int
    ) -> None:
        self.cluster = cluster
        self.op_timeout_s = op_timeout_s
        self.replicas = replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._clients: dict[tuple[str, bool], MultiplexedClient] = {}

    async def for_key(self, key: str, *, waited: bool) -> tuple[str, MultiplexedClient]:
        """(node name, its client): a :class:`GroupCommitClient` when ``waited``.

        redis-py reads the slot map on its first command, and refreshes it
        when one of its error paths asked for that: ``initialize`` does
        either when due, and is a flag check otherwise."""
        await self.cluster.initialize()
        node = self.cluster.get_node_from_key(key)
        assert node is not None  # a primary is asked for: redis-py raises, not None
        return node.name, self.at(node.host, int(node.port), waited=waited)

    def at(self, host: str, port: int, *, waited: bool) -> MultiplexedClient:
        """The client of the node at ``host:port`` (an ``ASK`` names it)."""
        name = f"{host}:{port}"
        found = self._clients.get((name, waited))
        if found is None:
            node = self.cluster.get_node(host=host, port=port) or self.cluster.get_default_node()
            options: dict[str, Any] = {
                "username": node.connection_kwargs.get("username"),
                "password": node.connection_kwargs.get("password"),
                "connect_timeout_s": self.op_timeout_s,
                "timeout_s": self.op_timeout_s,
            }
            if waited:
                found = GroupCommitClient(
                    host,
                    port,
                    replicas=self.replicas,
                    wait_timeout_ms=self.wait_timeout_ms,
                    **options,
                )
            else:
                found = MultiplexedClient(host, port, **options)
            self._clients[(name, waited)] = found
        return found

    async def forget(self, name: str, key: str, *, waited: bool) -> None:
        """That client of ``name`` lost its connection on ``key``: drop it
        (the next command looks the node up again) and :meth:`learn`."""
        client = self._clients.pop((name, waited), None)
        if client is not None:
            await client.aclose()
        await self.learn(key)

    async def learn(self, key: str) -> None:
        """Let redis-py find where the key's slot lives now: a read through
        its routing follows a redirect into its slot map, and a failed node
        makes it refresh the map.  Bounded by one operation's timeout."""
        with contextlib.suppress(*_LEARN_ERRORS):
            async with asyncio.timeout(self.op_timeout_s):
                await self.cluster.exists(key)

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
