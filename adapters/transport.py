"""The one boundary where foreign failures (aiohttp, asyncio) become the taxonomy,
and the TLS every adapter speaks."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from adapters.errors import AcquirerError, NotProcessed, OutcomeUnknown
from adapters.settings import AcquirerSettings
from adapters.values import frozen

#: foreign failures in the order they are tested (subclasses before their bases):
#: the connect phase cannot have reached the acquirer; anything later might have
_TRANSPORT: tuple[tuple[type[BaseException], type[AcquirerError], str], ...] = (
    (aiohttp.ConnectionTimeoutError, NotProcessed, "connect_timeout"),
    (aiohttp.ClientConnectorError, NotProcessed, "connect_failed"),  # refused, DNS, TLS
    (aiohttp.SocketTimeoutError, OutcomeUnknown, "read_timeout"),
    (aiohttp.ServerDisconnectedError, OutcomeUnknown, "disconnected"),
    (aiohttp.ClientPayloadError, OutcomeUnknown, "truncated_response"),
    (aiohttp.ClientResponseError, OutcomeUnknown, "bad_response"),
    (aiohttp.ClientOSError, OutcomeUnknown, "connection_reset"),  # reset mid-request/response
    (aiohttp.ClientError, OutcomeUnknown, "client_error"),
    (TimeoutError, OutcomeUnknown, "deadline_exceeded"),
)


class transport_boundary:  # lower case: it reads as the function it replaced
    """Translate aiohttp/asyncio failures into the taxonomy.

    The line that matters is *connection established*: anything that fails
    before a connection exists cannot have reached the acquirer; anything
    after it might have.  An overall timeout cannot tell which side of that
    line it fired on, so it is an ``OutcomeUnknown``.

    A class rather than a generator-based context manager: every acquirer
    call enters it, and the generator kind costs five times as much to enter
    and leave (measured: 4.7 against 0.9 us).
    """

    __slots__ = ("_acquirer",)

    def __init__(self, acquirer: str) -> None:
        self._acquirer = acquirer

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> None:  # never swallows: a failure leaves as ours, or as it came
        if exc is None or isinstance(exc, AcquirerError):
            return
        if isinstance(exc, aiohttp.ClientError | TimeoutError):
            for foreign, ours, reason in _TRANSPORT:
                if isinstance(exc, foreign):
                    raise ours(self._acquirer, reason, str(exc)) from exc


@frozen
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def tls_context(settings: AcquirerSettings) -> ssl.SSLContext | bool:
    """Verified TLS 1.2+ always; a private CA when configured; off only in test mode."""
    if not settings.tls_verify:  # the settings validator allows this for test mode only
        return False
    context = ssl.create_default_context(cafile=settings.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
