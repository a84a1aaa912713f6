"""How the router listens: the limits in front of the application.

aiohttp parses a request before any middleware sees it, so what its parser
refuses (a request line or header over the limit, too many headers, control
bytes, a broken chunked body) never reaches the application's error
handling.  The request handler here turns those refusals into problem+json
with the status that names them (414, 431, 400 for the rest: a method the
parser does not know is 400 ``unknown_method``, not 501, because nothing a
client sends may earn a 5xx), logs one line without the
offending bytes (they may hold a card number), and never a traceback.

Slow or stalled clients cannot hold the router:

- a request line and headers must arrive within ``header_timeout_s`` of the
  connection opening (or of the previous answer): aiohttp's keep-alive timer
  already runs from those moments and closes a connection whose next request
  is not complete, so it is set to that bound;
- a body must arrive within ``body_timeout_s`` (:func:`router.http.inputs.read_body`
  answers 408); after an answer, unread body bytes are drained for at most
  ``LINGER_S`` before the connection closes;
- beyond ``max_connections`` open connections a new one is answered 503
  (problem+json, ``Retry-After``) and closed at once.

The ``Server`` header names the product, never versions.  The listener's TLS
floor is 1.2.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from router.config import ServerConfig
from router.http.keys import LIFECYCLE
from router.problems import PROBLEM_CONTENT_TYPE, Problem

log = logging.getLogger(__name__)

SERVER_NAME = "payrouter"
#: the request line's limit differs from a header line's by one byte so that
#: a LineTooLong says which it was: 414 for the URL, 431 for a header
MAX_REQUEST_LINE = 8190
MAX_HEADER_LINE = 8191
MAX_HEADERS_PARSED = 100
LINGER_S = 1.0


def _parser_problem(exc: BaseException | None, status: int) -> Problem:
    if isinstance(exc, LineTooLong):
        if exc.args[1] == MAX_REQUEST_LINE:
            return Problem(414, "uri_too_long", "the request line is too long")
        return Problem(431, "headers_too_large", "a header line is too long")
    if isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message:
        return Problem(431, "headers_too_large", "the request has too many headers")
    if isinstance(exc, BadHttpMethod):  # llhttp knows the registered methods only
        return Problem(400, "unknown_method", "the request method is not a registered HTTP method")
    if status == 500:
        return Problem(500, "internal_error", "an internal error occurred")
    return Problem(status, "malformed_request", "the request is not valid HTTP/1.1")


def _problem_bytes(problem: Problem) -> bytes:
    return orjson.dumps(problem.body())


@dataclass
class _Gate:
    """Open connections of one listener, against its limit."""

    limit: int
    open: int = 0
    refused: int = 0
    _overloaded: bytes = field(init=False, default=b"")

    def __post_init__(self) -> None:
        body = _problem_bytes(
            Problem(503, "too_many_connections", "the router is at its connection limit; retry")
        )
        head = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Retry-After: 1\r\nConnection: close\r\n"
            f"Server: {SERVER_NAME}\r\n\r\n"
        )
        self._overloaded = head.encode() + body

    @property
    def overloaded_answer(self) -> bytes:
        return self._overloaded


class _Handler(RequestHandler):
    """aiohttp's protocol handler with our connection gate and refusals."""

    def __init__(self, manager: web.Server, *, gate: _Gate, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._gate.open += 1
        self._counted = True
        if self._gate.open > self._gate.limit:
            self._gate.refused += 1
            assert isinstance(transport, asyncio.Transport)
            transport.write(self._gate.overloaded_answer)
            self.force_close()
            transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._gate.open -= 1
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        problem = _parser_problem(exc, status)
        if problem.status == 500:
            log.error("request failed outside the application: %s", type(exc).__name__)
        else:
            log.info("refused a request: %s (%s)", problem.code, type(exc).__name__)
        response = web.Response(
            status=problem.status,
            body=_problem_bytes(problem),
            content_type=PROBLEM_CONTENT_TYPE,
            headers={"Server": SERVER_NAME},
        )
        response.force_close()
        return response


class _Server(web.Server):
    def __init__(self, *args: Any, gate: _Gate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = gate

    def __call__(self) -> RequestHandler:
        return _Handler(self, gate=self._gate, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """An AppRunner whose connections go through :class:`_Handler`."""

    def __init__(self, app: web.Application, server: ServerConfig, **kwargs: Any) -> None:
        super().__init__(
            app,
            access_log=None,
            keepalive_timeout=server.header_timeout_s,
            lingering_time=LINGER_S,
            max_line_size=MAX_REQUEST_LINE,
            max_field_size=MAX_HEADER_LINE,
            max_headers=MAX_HEADERS_PARSED,
            **kwargs,
        )
        self.gate = _Gate(server.max_connections)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _Server(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            gate=self.gate,
            **self._kwargs,
        )


async def name_the_product(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: no versions in the Server header."""
    response.headers["Server"] = SERVER_NAME


def listener_tls(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    reuse_port: bool = False


class CannotListen(Exception):
    """The port is taken (or the address is not ours): a start-up error that
    no retry will fix, reported before anything else has started."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bind the listening socket before the application starts, so a busy port
    fails at once: no background task (store watch, reconciler) is running yet
    that could hold the exit up."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise CannotListen(host, port, str(exc)) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CannotListen(host, port, exc.strerror or str(exc)) from None
    sock.setblocking(False)
    return sock


#: the young generation's size before a collection (CPython's default is 700)
GC_YOUNG_THRESHOLD = 10_000


def freeze_startup_heap() -> None:
    """Move everything built at startup (modules, pydantic validators, the
    config, clients) out of the cyclic collector's reach: each full
    collection would otherwise walk that whole heap again, on whichever
    payment's time it falls.  A larger young generation makes collections
    rarer; a payment's garbage is mostly freed by reference counting anyway.
    (On this 2-CPU machine the saving was about 3%, within its noise.)"""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def serve(
    app: web.Application,
    server: ServerConfig,
    listen: Listen,
    *,
    side: web.Application | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` (and ``side``, the metrics app, on its own port) until
    ``stop`` is set or SIGTERM/SIGINT arrives (SIGTERM drains first:
    :func:`drain_before_closing`).  Raises CannotListen before starting
    anything when a port cannot be bound."""
    stop = stop or asyncio.Event()
    apps = [app] + ([side] if side is not None and server.metrics.port is not None else [])
    ports = [listen.port, server.metrics.port]
    sockets: list[socket.socket] = []
    try:
        for port in ports[: len(apps)]:
            assert port is not None
            sockets.append(bind(listen.host, port, reuse_port=listen.reuse_port))
    except CannotListen:
        for sock in sockets:
            sock.close()
        raise
    runners = [Runner(one, server, shutdown_timeout=server.shutdown_timeout_s) for one in apps]
    with _stopped_by_signals(stop) as graceful:
        try:
            for runner, sock in zip(runners, sockets, strict=True):
                await runner.setup()
                tls = listen.tls if runner is runners[0] else None
                await web.SockSite(runner, sock, ssl_context=tls).start()
            freeze_startup_heap()
            await stop.wait()
            if graceful.is_set():
                await drain_before_closing(app, server.shutdown_drain_s)
        finally:
            for runner in reversed(runners):
                await runner.cleanup()


@contextmanager
def _stopped_by_signals(stop: asyncio.Event) -> Iterator[asyncio.Event]:
    """SIGTERM (an orchestrator's stop) sets ``stop`` and the event yielded,
    which asks for the drain first; SIGINT (Ctrl-C) sets only ``stop``.

    Installed before the start-up, not after it: a stop while starting (a
    supervisor stopping a worker it has just started) is then taken once the
    start is over, where asyncio's own SIGINT handler would cancel the start
    half-way and leave a KeyboardInterrupt traceback."""
    loop = asyncio.get_running_loop()
    graceful = asyncio.Event()

    def on_sigterm() -> None:
        graceful.set()
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        yield graceful
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)


async def drain_before_closing(app: web.Application, seconds: float) -> None:
    """A rolling deploy without refused requests: first say "not ready" (the
    load balancer stops sending new connections) and ask keep-alive clients
    to reconnect elsewhere, while still answering everything for
    ``seconds``; then the listener closes and requests in flight get
    ``shutdown_timeout_s`` to finish."""
    if LIFECYCLE in app:
        app[LIFECYCLE].draining = True
    log.info("stopping: not ready, serving for %.1f s more before closing", seconds)
    await asyncio.sleep(seconds)
