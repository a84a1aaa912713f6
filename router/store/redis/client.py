"""Redis connections: which client a URL means, the one error boundary, and
scripts followed by ``WAIT`` on the same connection.

Every Redis error class -- a lost connection, ``READONLY`` from a demoted
primary, ``LOADING``, ``MASTERDOWN``, ``NOREPLICAS``, ``TRYAGAIN``,
``CLUSTERDOWN``, a moved slot, a Cluster slot nobody serves -- becomes
:class:`StoreUnavailable` here and nowhere else, so the API answers 503
with Retry-After and never a 500.

Durability: ``WAIT n timeout`` blocks until n replicas acknowledged every
write the *same connection* made, so a script and its WAIT go out on one
connection: in a batch of scripts with one WAIT behind it
(:mod:`router.store.redis.group_commit`, on the primary a URL or Sentinel
names, or on each Cluster primary), or, for a TLS URL with options the
pipelined client does not take, as a redis-py pipeline of its own.
redis-py's ``register_script`` objects hold the scripts, but are not used
inside that pipeline: a pipeline with registered scripts sends ``SCRIPT
EXISTS`` first, a round trip per step; here EVALSHA goes straight out and a
NOSCRIPT reply (a restarted or failed-over server) loads the script and
sends it again -- safe, because NOSCRIPT means nothing ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import RedisSSLContext, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript

from router.store.protocol import NotDurable, StoreUnavailable
from router.store.redis.cluster_nodes import NodePipes
from router.store.redis.group_commit import GroupCommitClient
from router.store.redis.multiplexed import MultiplexedClient

#: what Redis or the way to it can raise: each becomes StoreUnavailable (a
#: Cluster's slot nobody serves is a RedisClusterException, not a RedisError)
REDIS_ERRORS = (rexc.RedisError, rexc.RedisClusterException, OSError)


#: a reusable no-op: most steps need no deadline of their own
_UNBOUNDED: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()


def unavailable(exc: rexc.RedisError | rexc.RedisClusterException | OSError) -> StoreUnavailable:
    return StoreUnavailable(f"redis: {type(exc).__name__}: {exc}"[:300])


class redis_boundary:  # lower case: it reads as the function it replaced
    """``async with redis_boundary():`` -- a Redis error inside leaves as
    StoreUnavailable.  A class, not a generator-based context manager: both
    steps of every payment enter it, and entering and leaving the generator
    kind cost five times as much (measured: 4.7 against 0.9 us)."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> None:  # never swallows: a failure leaves as StoreUnavailable, or as it came
        if isinstance(exc, REDIS_ERRORS):
            raise unavailable(exc) from exc


def _client_options(
    op_timeout_s: float, password: str | None, *, timed: bool = True
) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": op_timeout_s if timed else None,
        "socket_connect_timeout": op_timeout_s,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        "retry_on_error": [rexc.ConnectionError, rexc.TimeoutError],
        "password": password,
    }


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = part.partition(":")
        hosts.append((host, int(port or default_port)))
    return hosts


def client_from_url(
    url: str, op_timeout_s: float = 1.0, password: str | None = None, *, timed: bool = True
) -> Any:
    """redis://, rediss://, redis+sentinel://h:p,h:p/service[/db], redis+cluster://h:p,h:p

    ``timed=False``: no per-socket-operation timeout; the caller bounds each
    whole operation itself (:class:`ScriptRunner`)."""
    parts = urlsplit(url)
    password = password or (unquote(parts.password) if parts.password else None)
    options = _client_options(op_timeout_s, password, timed=timed)
    if parts.scheme in ("redis", "rediss"):
        return aioredis.Redis.from_url(url, **options)
    if parts.scheme == "redis+cluster":
        options.pop("retry_on_error")
        nodes = [ClusterNode(h, p) for h, p in _hosts(parts.netloc, 6379)]
        return RedisCluster(startup_nodes=nodes, **options)
    if parts.scheme == "redis+sentinel":
        sentinel, service, db = _sentinel(url, op_timeout_s)
        return sentinel.master_for(service, db=db, **options)
    raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")


def _sentinel(url: str, op_timeout_s: float) -> tuple[Any, str, int]:
    """redis+sentinel://h:p,h:p/service[/db] -> (redis-py's Sentinel, service, db)."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise ValueError("redis+sentinel URL needs a service name: /<service>[/<db>]")
    service, db = segments[0], int(segments[1]) if len(segments) > 1 else 0
    # typed from redis-py 8 on, untyped before: called as Any either way
    sentinel_class: Any = Sentinel
    sentinel = sentinel_class(
        _hosts(parts.netloc, 26379),
        socket_timeout=op_timeout_s,
        socket_connect_timeout=op_timeout_s,
    )
    return sentinel, service, db


def pipelined_from_url(
    url: str,
    op_timeout_s: float = 1.0,
    password: str | None = None,
    *,
    replicas: int = 0,
    wait_timeout_ms: int = 500,
) -> MultiplexedClient | None:
    """The payment path's pipelined connection for a URL, when it can speak
    to it: plain ``redis://``, ``rediss://`` (TLS, see :func:`_tls`), or the
    primary ``redis+sentinel://`` names (asked again on each connect).
    ``replicas``: a :class:`~router.store.redis.group_commit.GroupCommitClient`
    whose scripts wait for that many replicas, one ``WAIT`` per batch.  None
    for a Cluster (:class:`ScriptRunner` runs its own per primary) and for a
    TLS URL with options :func:`_tls` does not take."""
    parts = urlsplit(url)
    password = password or (unquote(parts.password) if parts.password else None)
    options: dict[str, Any] = {"connect_timeout_s": op_timeout_s, "timeout_s": op_timeout_s}
    kind: type[MultiplexedClient] = MultiplexedClient
    if replicas:
        kind = GroupCommitClient
        options.update(replicas=replicas, wait_timeout_ms=wait_timeout_ms)
    if parts.scheme == "redis":
        return kind.from_url(url, password, **options)
    if parts.scheme == "rediss":
        found = _tls(url)
        if found is None:
            return None
        address, context = found
        return kind(
            str(address["host"]),
            int(address.get("port", 6379)),
            db=int(address.get("db", 0)),
            username=address.get("username"),
            password=password,
            ssl=context,
            **options,
        )
    if parts.scheme == "redis+sentinel":
        sentinel, service, db = _sentinel(url, op_timeout_s)
        return kind(
            "",
            0,
            db=db,
            password=password,
            locate=_SentinelPrimary(sentinel, service),
            **options,
        )
    return None


class _SentinelPrimary:
    """Where the sentinels say the primary is, asked by a pipelined client on
    each connect, and closed with it: redis-py's Sentinel keeps its
    connections to the sentinels open until it is closed."""

    def __init__(self, sentinel: Any, service: str) -> None:
        self._sentinel, self._service = sentinel, service

    async def __call__(self) -> tuple[str, int]:
        host, port = await self._sentinel.discover_master(self._service)
        return str(host), int(port)

    async def aclose(self) -> None:
        await self._sentinel.aclose()


async def close_client(client: Any) -> None:
    """Close a client, and the Sentinel behind it when it has one (a
    ``master_for`` client does not close its Sentinel)."""
    with contextlib.suppress(Exception):
        await client.aclose()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    if manager is not None:
        with contextlib.suppress(Exception):
            await manager.aclose()


#: a rediss:// URL's TLS options, as redis-py's SSLConnection takes them ->
#: as its RedisSSLContext does; with any other option in the URL, the URL is
#: left to redis-py, which knows them all
_TLS_OPTIONS = {
    "ssl_ca_certs": "ca_certs",
    "ssl_ca_path": "ca_path",
    "ssl_cert_reqs": "cert_reqs",
    "ssl_certfile": "certfile",
    "ssl_keyfile": "keyfile",
    "ssl_password": "password",
    "ssl_check_hostname": "check_hostname",
    "ssl_min_version": "min_version",
    "ssl_ciphers": "ciphers",
}
_ADDRESS = {"host", "port", "db", "username", "password", "connection_class"}


def _tls(url: str) -> tuple[dict[str, Any], ssl.SSLContext] | None:
    """(the URL's address, the TLS context redis-py would build for it).

    redis-py reads the URL and builds the context, so the pipelined
    connection verifies exactly what a redis-py connection would: the
    server's certificate against ``ssl_ca_certs`` (or the system's), its
    host name unless ``ssl_check_hostname=false``.  The defaults are
    SSLConnection's, not RedisSSLContext's (which verifies nothing)."""
    parsed: dict[str, Any] = dict(parse_url(url))
    if set(parsed) - _ADDRESS - set(_TLS_OPTIONS):
        return None
    options: dict[str, Any] = {"cert_reqs": "required", "check_hostname": True}
    options.update({_TLS_OPTIONS[k]: v for k, v in parsed.items() if k in _TLS_OPTIONS})
    return parsed, RedisSSLContext(**options).get()


class ScriptRunner:
    """Runs the store's scripts, each optionally followed by WAIT.

    ``untimed``: a client of the same server without per-socket timeouts
    (:func:`client_from_url` with ``timed=False``).  The scripts are the
    payment path's two round trips; redis-py times each socket write with
    ``wait_for`` (a task per command on Python 3.11) and each read with a
    timeout of its own.  Through ``untimed`` one deadline bounds the whole
    step instead (retries included), at a tenth of the cost.  Cancelling a
    command makes redis-py drop its connection, so no reply is misread.

    ``alone``: what runs a script that is not followed by ``WAIT`` (the
    payment path without replicas), when given: a
    :class:`~router.store.redis.multiplexed.MultiplexedClient`, a quarter of
    redis-py's cost per command, which bounds each command itself.

    ``grouped``: what runs a script that is followed by ``WAIT``, when given:
    a :class:`~router.store.redis.group_commit.GroupCommitClient`, whose
    scripts share one ``WAIT`` per batch (:func:`pipelined_from_url`).
    Without it, each such script is a redis-py pipeline of its own.

    On a Cluster, both kinds run on the pipelined clients of the primary
    that owns the key's slot (:class:`~router.store.redis.cluster_nodes.NodePipes`)."""

    def __init__(
        self,
        client: Any,
        replicas: int = 0,
        wait_timeout_ms: int = 500,
        op_timeout_s: float = 1.0,
        *,
        untimed: Any = None,
        alone: Any = None,
        grouped: GroupCommitClient | None = None,
    ) -> None:
        self.client = client
        self.replicas = replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.op_timeout_s = op_timeout_s
        self._cluster = isinstance(client, RedisCluster)
        self._untimed = None if self._cluster else untimed
        self._scripts = self._untimed if self._untimed is not None else client
        self._alone = self._scripts if alone is None or self._cluster else alone
        #: bounds each command itself: no deadline around it
        self._alone_bounded = isinstance(self._alone, MultiplexedClient)
        self._grouped = None if self._cluster else grouped
        self._nodes = (
            NodePipes(
                client,
                op_timeout_s=op_timeout_s,
                replicas=replicas,
                wait_timeout_ms=wait_timeout_ms,
            )
            if self._cluster
            else None
        )

    def register(self, source: str) -> AsyncScript:
        return self.client.register_script(source)  # type: ignore[no-any-return]

    async def run(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any], *, durable: bool
    ) -> Any:
        wait = durable and self.replicas > 0
        if self._nodes is not None:  # pipelined clients bound each command themselves
            async with redis_boundary():
                return await self._run_on_node(self._nodes, script, keys, args, wait=wait)
        if wait and self._grouped is not None:  # it bounds each script and its WAIT itself
            async with redis_boundary():
                return await self._run_grouped(self._grouped, script, keys, args)
        async with redis_boundary(), self._deadline(wait):
            if wait:
                return await self._run_waited(script, keys, args)
            return await self._run_alone(script, keys, args)

    def _deadline(self, wait: bool) -> contextlib.AbstractAsyncContextManager[object]:
        """The whole step's bound when the client has none of its own."""
        if not wait and self._alone_bounded:  # it bounds each command itself
            return _UNBOUNDED
        if (self._scripts if wait else self._alone) is self.client:  # timed per socket
            return _UNBOUNDED
        return asyncio.timeout(self.op_timeout_s + (self.wait_timeout_ms / 1000 if wait else 0))

    async def _run_waited(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """EVALSHA then WAIT, as one pipeline on one connection."""
        client = self._scripts
        for _ in range(2):
            pipe = client.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.wait(self.replicas, self.wait_timeout_ms)
            replies = await pipe.execute(raise_on_error=False)
            if isinstance(replies[0], rexc.NoScriptError):
                await client.script_load(script.script)
                continue
            if isinstance(replies[0], Exception):
                raise replies[0]
            self._judge(int(replies[1]))
            return replies[0]
        raise StoreUnavailable("script could not be loaded")

    async def _run_grouped(
        self,
        grouped: GroupCommitClient,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        asking: bool = False,
    ) -> Any:
        """EVALSHA in the next batch, judged by the batch's one WAIT."""
        sha, count = script.sha, len(keys)
        try:
            reply, acked = await grouped.evalsha_waited(sha, count, *keys, *args, asking=asking)
        except rexc.NoScriptError:  # nothing ran: load it and send it again
            await grouped.script_load(cast(str, script.script))  # the store registers text
            reply, acked = await grouped.evalsha_waited(sha, count, *keys, *args, asking=asking)
        self._judge(acked)
        return reply

    def _judge(self, acked: int) -> None:
        """Written, but on fewer replicas than a failover needs: fail closed."""
        if acked < self.replicas:
            within = f"within {self.wait_timeout_ms} ms"
            raise NotDurable(f"{acked} of {self.replicas} replicas acknowledged {within}")

    async def _run_on_node(
        self,
        nodes: NodePipes,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        wait: bool,
        moved: bool = False,
    ) -> Any:
        """On the key's primary.  A redirect means nothing ran: once redis-py
        has learnt the new owner, the script is sent there, once (``moved``).
        During a slot's migration (``ASK``: the key has left), the script goes
        to the importing node behind ``ASKING``: one that need not wait
        through redis-py's routing, a waited one in the importing node's next
        batch.  A lost connection may have run it: never sent again."""
        name, client = await nodes.for_key(keys[0], waited=wait)
        try:
            if isinstance(client, GroupCommitClient):
                return await self._run_grouped(client, script, keys, args)
            return await self._run_alone(script, keys, args, client)
        except rexc.MovedError:  # a MovedError is an AskError too: first
            await nodes.learn(keys[0])
            if moved:
                raise
            return await self._run_on_node(nodes, script, keys, args, wait=wait, moved=True)
        except rexc.AskError as asked:
            if not wait:
                return await script(keys=list(keys), args=list(args))
            host = asked.host or name.rsplit(":", 1)[0]  # Redis may leave its own host out
            importing = nodes.at(host, int(asked.port), waited=True)
            assert isinstance(importing, GroupCommitClient)
            return await self._run_grouped(importing, script, keys, args, asking=True)
        except (rexc.ConnectionError, rexc.TimeoutError):
            await nodes.forget(name, keys[0], waited=wait)
            raise

    async def _run_alone(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any], alone: Any = None
    ) -> Any:
        """Nothing to WAIT for: one EVALSHA, without a pipeline's bookkeeping."""
        alone = self._alone if alone is None else alone
        try:
            return await alone.evalsha(script.sha, len(keys), *keys, *args)
        except rexc.NoScriptError:  # nothing ran: load it and send it again
            await alone.script_load(script.script)
            return await alone.evalsha(script.sha, len(keys), *keys, *args)

    async def close(self) -> None:
        if self._nodes is not None:
            await self._nodes.close()
        for own in {self._scripts, self._alone, self._grouped} - {self.client, None}:
            await close_client(own)
        await close_client(self.client)
