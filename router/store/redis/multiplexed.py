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
  store's one error boundary (:func:`router.store.redis.client.redis_boundary`)
  maps them as before.
- A command whose connection is lost while it waits is never sent again:
  whether it ran is unknown, and the caller's answer (503, retry with the
  same key) is the one the journal is built for.
- A caller that gives up (its deadline cancels it) leaves its reply to be
  read and dropped in its turn, so no reply is ever handed to the wrong
  caller.  If nothing has been read for ``stall_s`` while commands wait,
  the connection is presumed dead (a peer gone without a reset) and
  dropped, failing what waits on it, so the next command reconnects.

Not for ``WAIT``: it blocks the connection it is sent on, which here would
hold every other payment's script behind one replica acknowledgement; the
durable path keeps redis-py's pipeline on a connection of its own.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
import redis.exceptions as rexc

#: hiredis's stub types its argument as a one-element tuple; it takes any length
_pack = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)


def _error(reply: hiredis.ReplyError) -> rexc.ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return rexc.NoScriptError(message)
    return rexc.ResponseError(message)


class _Connection(asyncio.Protocol):
    """One socket: commands out in order, replies matched in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(encoding="utf-8")
        #: (the caller's future, when its command was queued), oldest first
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._last_read = time.monotonic()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._last_read = time.monotonic()
        reader = self._reader
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                future, _ = self._waiting.popleft()
                if not future.done():  # a caller that gave up: its reply is dropped here
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            self.abort(f"unreadable reply stream: {exc!r}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = rexc.ConnectionError(f"redis connection lost: {exc!r}" if exc else "closed")
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.lost or self._transport is None:
            raise rexc.ConnectionError("redis connection lost")
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((future, time.monotonic()))
        if not self._out:  # the first command of this turn: flush when the turn ends
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(packed)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and not self.lost:
            self._transport.write(b"".join(out))

    def stalled(self, stall_s: float) -> bool:
        """Commands wait and nothing has been read for ``stall_s``."""
        if not self._waiting:
            return False
        now = time.monotonic()
        oldest_sent = self._waiting[0][1]
        return now - oldest_sent > stall_s and now - self._last_read > stall_s

    def abort(self, why: str) -> None:
        if self._transport is not None:
            self._transport.abort()  # connection_lost fails what waits
        else:
            self.connection_lost(rexc.ConnectionError(why))


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
        stall_s: float = 1.0,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self._username, self._password = username, password
        self._connect_timeout_s = connect_timeout_s
        self._stall_s = stall_s
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
        future = connection.send(_pack(args))
        try:
            reply = await future
        except asyncio.CancelledError:
            if connection.stalled(self._stall_s):
                connection.abort("no reply within the stall bound")
            raise
        if isinstance(reply, hiredis.ReplyError):
            raise _error(reply)
        return reply

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

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(_Connection, self.host, self.port)
                greeting: list[tuple[str | int, ...]] = []
                if self._password is not None:
                    auth = ("AUTH", self._username, self._password) if self._username else ()
                    greeting.append(auth or ("AUTH", self._password))
                if self.db:
                    greeting.append(("SELECT", self.db))
                for command in greeting:
                    reply = await connection.send(_pack(command))
                    if isinstance(reply, hiredis.ReplyError):
                        connection.abort("refused")
                        raise rexc.AuthenticationError(str(reply))
        except (OSError, TimeoutError) as exc:
            raise rexc.ConnectionError(f"redis {self.host}:{self.port}: {exc!r}") from exc
        return connection

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.abort("closed")
            self._connection = None
