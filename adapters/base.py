"""Adapter interface and the outcome taxonomy every acquirer is mapped into.

An issuer's answer (approved, declined, pending) is a *value*: the money moved
or it did not, and we know which.  Transport trouble is an *exception*, and the
exception type carries the one fact the router needs to stay safe: whether the
acquirer can possibly have processed the request.

* ``NotProcessed``   -- provably nothing happened; another acquirer may be tried.
* ``OutcomeUnknown`` -- bytes left this process and no trustworthy answer came
  back; the request may have moved money.  Never fail over on this.
* ``IntegrationError`` -- our side is wrong (credentials, encoding); retrying
  anywhere will not help.

Foreign exceptions (aiohttp, asyncio) are mapped here, at one boundary, by
:func:`transport_boundary`; adapters never catch aiohttp errors themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import ssl
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

#: the router's request id, sent on to acquirers for tracing across both logs
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "payrouter_request_id", default=None
)


class Operation(enum.StrEnum):
    AUTHORIZE = "authorize"
    SALE = "sale"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


class ResultStatus(enum.StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class AcquirerResult:
    """The acquirer's definite answer to one operation."""

    status: ResultStatus
    acquirer_reference: str | None = None
    decline_code: str | None = None
    message: str | None = None
    raw_status: str | None = None
    redirect_url: str | None = None

    @property
    def approved(self) -> bool:
        return self.status is ResultStatus.APPROVED


# --------------------------------------------------------------------------- orders


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """Authorize or sale.  ``idempotency_key`` is the *acquirer* key the router
    derived; it must be sent unchanged on every replay."""

    payment_id: str
    amount: int
    currency: str
    payment_method: str
    capture: bool
    idempotency_key: str
    merchant_reference: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FollowOnOrder:
    """Capture, void or refund of a payment the acquirer already knows."""

    payment_id: str
    acquirer_reference: str
    amount: int
    currency: str
    idempotency_key: str
    refund_id: str | None = None
    merchant_reference: str | None = None


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """Ask the acquirer what became of one operation we sent.

    ``acquirer_reference`` is known for follow-on operations; for a create we
    may only know our idempotency key and payment id (the reply was lost).
    """

    operation: Operation
    payment_id: str
    idempotency_key: str
    acquirer_reference: str | None = None
    refund_id: str | None = None


# ----------------------------------------------------------------------- exceptions


class AcquirerError(Exception):
    """Base of transport-level trouble; ``reason`` is a stable machine code."""

    def __init__(
        self, acquirer: str, reason: str, detail: str = "", *, replayable: bool = True
    ) -> None:
        super().__init__(f"{acquirer}: {reason}" + (f" ({detail})" if detail else ""))
        self.acquirer = acquirer
        self.reason = reason
        self.detail = detail
        #: False when the acquirer said a replay under the same key cannot help
        #: (e.g. Stripe-Should-Retry: false); resolution then asks for status only
        self.replayable = replayable


class NotProcessed(AcquirerError):
    """The acquirer provably did not act on the request: safe to try elsewhere."""


class OutcomeUnknown(AcquirerError):
    """The request may have been processed.  Only the same acquirer, asked with
    the same idempotency key, can tell us what happened."""


class IntegrationError(AcquirerError):
    """A defect on our side of the integration; needs a human, not a retry."""


# ------------------------------------------------------------------------- boundary


@contextlib.asynccontextmanager
async def transport_boundary(acquirer: str) -> AsyncIterator[None]:
    """Translate aiohttp/asyncio failures into the taxonomy.

    The line that matters is *connection established*: anything that fails
    before a connection exists cannot have reached the acquirer; anything
    after it might have.  An overall timeout cannot tell which side of that
    line it fired on, so it is an ``OutcomeUnknown``.
    """
    try:
        yield
    except AcquirerError:
        raise
    except aiohttp.ConnectionTimeoutError as exc:  # connect phase: nothing sent
        raise NotProcessed(acquirer, "connect_timeout", str(exc)) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, DNS, TLS handshake
        raise NotProcessed(acquirer, "connect_failed", str(exc)) from exc
    except aiohttp.SocketTimeoutError as exc:
        raise OutcomeUnknown(acquirer, "read_timeout", str(exc)) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise OutcomeUnknown(acquirer, "disconnected", str(exc)) from exc
    except aiohttp.ClientPayloadError as exc:
        raise OutcomeUnknown(acquirer, "truncated_response", str(exc)) from exc
    except aiohttp.ClientResponseError as exc:
        raise OutcomeUnknown(acquirer, "bad_response", str(exc)) from exc
    except aiohttp.ClientOSError as exc:  # reset mid-request or mid-response
        raise OutcomeUnknown(acquirer, "connection_reset", str(exc)) from exc
    except aiohttp.ClientError as exc:
        raise OutcomeUnknown(acquirer, "client_error", str(exc)) from exc
    except TimeoutError as exc:
        raise OutcomeUnknown(acquirer, "deadline_exceeded", str(exc)) from exc


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 2.0
    read: float = 10.0


class Adapter(ABC):
    """One acquirer.  Implementations build wire requests and map replies; the
    HTTP plumbing and the exception boundary live here so every adapter gets
    the same safety rules."""

    kind: str = "abstract"
    #: True when ``status`` answering None PROVES the acquirer never processed a
    #: request under that key (it records keys before acting on them).  Only
    #: then may the reconciler, after a grace period, settle "unknown" as
    #: "not processed"; otherwise an unknown stays unknown until proven.
    status_is_authoritative: bool = False

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        base_url: str,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._session = session
        self.timeouts = timeouts or Timeouts()
        #: verification is on unless the router's config (test mode only) says otherwise
        self.tls: ssl.SSLContext | bool = True
        self._client_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.timeouts.connect,
            sock_connect=self.timeouts.connect,
            sock_read=self.timeouts.read,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send one request and read the whole reply inside the boundary, so a
        reset while reading the body is classified like any other."""
        body: bytes | str | None = data
        hdrs = dict(headers or {})
        rid = REQUEST_ID.get()
        if rid is not None:
            hdrs.setdefault("X-Request-Id", rid)
        if json is not None:
            body = orjson.dumps(json)
            hdrs.setdefault("Content-Type", "application/json")
        async with (
            transport_boundary(self.name),
            self._session.request(
                method,
                self.base_url + path,
                data=body,
                headers=hdrs,
                timeout=self._client_timeout,
                allow_redirects=False,
                ssl=self.tls,
            ) as resp,
        ):
            payload = await resp.read()
            return HttpReply(resp.status, dict(resp.headers), payload)

    def parse_json(self, reply: HttpReply) -> Any:
        """A 2xx we cannot parse may still have moved money."""
        try:
            return reply.json()
        except orjson.JSONDecodeError as exc:
            raise OutcomeUnknown(self.name, "unparsable_response", str(exc)) from exc

    @abstractmethod
    async def authorize(self, order: PaymentOrder) -> AcquirerResult: ...

    @abstractmethod
    async def sale(self, order: PaymentOrder) -> AcquirerResult: ...

    @abstractmethod
    async def capture(self, order: FollowOnOrder) -> AcquirerResult: ...

    @abstractmethod
    async def void(self, order: FollowOnOrder) -> AcquirerResult: ...

    @abstractmethod
    async def refund(self, order: FollowOnOrder) -> AcquirerResult: ...

    @abstractmethod
    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        """The acquirer's record of one operation, or None when it has none
        (which does not prove the operation was never processed)."""

    @abstractmethod
    async def health(self) -> None:
        """Return when the acquirer answers; raise an AcquirerError otherwise."""

    async def create(self, order: PaymentOrder) -> AcquirerResult:
        return await (self.sale(order) if order.capture else self.authorize(order))


async def sleep_backoff(attempt: int, base: float = 0.05, cap: float = 1.0) -> None:
    """Small capped exponential pause between same-acquirer replays."""
    await asyncio.sleep(min(cap, base * (2**attempt)))
