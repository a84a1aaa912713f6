"""One pipelined connection for the payment path's scripts.

Why not redis-py here: its asyncio client spends about 50 us of Python per
command (argument encoding, the pool and its lock, the retry and
observability wrappers, a connection checked out and back per command),
four times what the two scripts' round trips cost over one multiplexed
connection (measured: ~11 us per EVALSHA).  The wire format is hiredis's
(``pack_command`` and ``Reader``, the parser redis-py itself uses); what is
written here is only the multiplexing: commands go out in order on one
socket, the writes of one event-loop turn in one send, and replies are
matched to their callers first-in first-out, which is what RESP guarantees.

What callers can rely on:

- An error reply raises the redis-py class it would have raised there
  (:class:`~redis.exceptions.NoScriptError`, else
  :class:`~redis.exceptions.ResponseError`), and a lost or refused
  connection raises :class:`~redis.exceptions.ConnectionError`, so the
  store's one error boundary (:class:`router.store.redis.client.redis_boundary`)
  maps them as before.
- A command whose connection is lost while it waits is never sent again:
  whether it ran is unknown, and the caller's answer (503, retry with the
  same key) is the one the journal is built for.
- Every command is bounded: when the oldest command on a connection has
  waited ``timeout_s`` without its reply, the connection is dropped and
  what waits on it fails with :class:`~redis.exceptions.TimeoutError`
  (replies come in order: nothing behind it can have been answered); the
  next command reconnects.  One timer per connection, not one per command.
- A caller that gives up (cancelled) leaves its reply to be read and
  dropped in its turn, so no reply is ever handed to the wrong caller.

- Behind Sentinel (``locate``), every connection is opened to the address
  the sentinels name at that moment, and a ``READONLY`` reply (the primary
  was demoted under us) drops the connection, so the next command finds
  the new primary.  redis-py's Sentinel client does the same.

Not for a ``WAIT`` after each command: it blocks the connection it is sent
on, which here would hold every other payment's script behind one replica
acknowledgement.  Durable writes share one ``WAIT`` per batch on a
connection of their own instead (:mod:`router.store.redis.group_commit`).
"""

from __future__ import annotations

import asyncio
import collections
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
import redis.exceptions as rexc

#: hiredis's stub types its argument as a one-element tuple; it takes any length
_pack = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)


#: a loop's timers may fire up to a millisecond early (uvloop counts whole ms)
TIMER_SLACK_S = 0.002

#: where the primary is now (Sentinel's answer), asked on every connect
Locate = Callable[[], Awaitable[tuple[str, int]]]


def _error(reply: hiredis.ReplyError) -> rexc.ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return rexc.NoScriptError(message)
    if message.startswith("MOVED "):  # a Cluster's "this slot lives elsewhere": nothing ran
        return rexc.MovedError(message.removeprefix("MOVED "))
    if message.startswith("ASK "):  # the slot is migrating, and this key has left
        return rexc.AskError(message.removeprefix("ASK "))
    return rexc.ResponseError(message)


class _Connection(asyncio.Protocol):
    """One socket: commands out in order, replies matched in order, and a
    watchdog that drops the socket when its oldest command has waited
    ``timeout_s`` (replies come in order, so nothing behind it can have
    been answered either)."""

    def __init__(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader(encoding="utf-8")
        #: (the caller's future, when its command was queued), oldest first
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._failure: rexc.RedisError | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                future, _ = self._waiting.popleft()
                if not future.done():  # a caller that gave up: its reply is dropped here
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            self.abort(rexc.ConnectionError(f"unreadable reply stream: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        error = self._failure or rexc.ConnectionError(
            f"redis connection lost: {exc!r}" if exc else "redis connection closed"
        )
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.lost or self._transport is None:
            raise rexc.ConnectionError("redis connection lost")
        now = self._loop.time()
        future = self._loop.create_future()
        self._waiting.append((future, now))
        if not self._out:  # the first command of this turn: flush when the turn ends
            self._loop.call_soon(self._flush)
        self._out.append(packed)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(now + self._timeout_s, self._watch)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._transport is not None and not self.lost:
            self._transport.write(b"".join(out))

    def _watch(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        oldest = self._waiting[0][1]
        if self._loop.time() - oldest >= self._timeout_s - TIMER_SLACK_S:
            self.abort(rexc.TimeoutError(f"no reply from redis within {self._timeout_s} s"))
        else:
            self._watchdog = self._loop.call_at(oldest + self._timeout_s, self._watch)

    def abort(self, failure: rexc.RedisError) -> None:
        """Fail what waits with ``failure`` and drop the socket."""
        self._failure, self.lost = failure, True
        if self._transport is not None:
            self._transport.abort()  # connection_lost fails what waits
        else:
            self.connection_lost(None)


class MultiplexedClient:
    """The subset of redis-py's client the script runner uses (``evalsha``,
    ``script_load``, ``aclose``), over one :class:`_Connection` that is
    opened on first use and again after it is lost."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout_s: float = 1.0,
        timeout_s: float = 1.0,
        locate: Locate | None = None,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        """``host``, ``port``: the server, unless ``locate`` names it anew on
        each connect.  ``ssl``: speak TLS with this context, checking the
        certificate against ``host`` when the context checks host names."""
        self.host, self.port, self.db = host, port, db
        self._locate = locate
        self._ssl = ssl
        self._username, self._password = username, password
        self._connect_timeout_s = connect_timeout_s
        self._timeout_s = timeout_s
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    @classmethod
    def from_url(cls, url: str, password: str | None = None, **options: Any) -> MultiplexedClient:
        """``redis://[[user]:password@]host[:port][/db]``; ``password`` wins over the URL's."""
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"a multiplexed client speaks plain redis://, not {parts.scheme}://")
        segment = parts.path.strip("/")
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            db=int(segment) if segment else 0,
            username=unquote(parts.username) if parts.username else None,
            password=password or (unquote(parts.password) if parts.password else None),
            **options,
        )

    async def execute(self, *args: str | bytes | int | float) -> Any:
        connection = self._connection
        if connection is None or connection.lost:
            connection = await self._connect()
        reply = await connection.send(_pack(args))
        if isinstance(reply, hiredis.ReplyError):
            raise self._refused(connection, reply)
        return reply

    def _refused(self, connection: _Connection, reply: hiredis.ReplyError) -> rexc.RedisError:
        """The error a reply raises; a demoted primary's also drops the connection."""
        error: rexc.RedisError = _error(reply)
        if str(reply).startswith("READONLY"):
            error = rexc.ConnectionError(f"the primary was demoted: {reply}")
            connection.abort(error)
        return error

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return await self.execute("EVALSHA", sha, numkeys, *keys_and_args)

    async def script_load(self, source: str) -> str:
        return str(await self.execute("SCRIPT", "LOAD", source))

    async def _connect(self) -> _Connection:
        """One attempt shared by every caller that finds no connection."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, attempt: asyncio.Future[_Connection]) -> None:
        self._connecting = None
        if not attempt.cancelled() and attempt.exception() is None:
            self._connection = attempt.result()

    def _new_connection(self) -> _Connection:
        return _Connection(self._timeout_s)

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if self._locate is not None:
                    self.host, self.port = await self._locate()
                _, connection = await loop.create_connection(
                    self._new_connection,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
                greeting: list[tuple[str | int, ...]] = []
                if self._username and self._password is not None:
                    greeting.append(("AUTH", self._username, self._password))
                elif self._password is not None:
                    greeting.append(("AUTH", self._password))
                if self.db:
                    greeting.append(("SELECT", self.db))
                for command in greeting:
                    reply = await connection.send(_pack(command))
                    if isinstance(reply, hiredis.ReplyError):
                        refused = rexc.AuthenticationError(str(reply))
                        connection.abort(refused)
                        raise refused
        except (OSError, TimeoutError) as exc:
            raise rexc.ConnectionError(f"redis {self.host}:{self.port}: {exc!r}") from exc
        return connection

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.abort(rexc.ConnectionError("redis client closed"))
            self._connection = None
        closing = getattr(self._locate, "aclose", None)  # a locator that holds connections
        if closing is not None:
            await closing()
