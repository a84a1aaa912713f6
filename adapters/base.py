"""The adapter interface: what the router asks of an acquirer, and what it gets back.

An issuer's answer (approved, declined, pending) is a *value*, an
:class:`AcquirerResult`: the money moved or it did not, and we know which.
Transport trouble is an *exception* (see :mod:`adapters.errors` for the
tree), and its type carries the one fact the router needs to stay safe:
whether the acquirer can possibly have processed the request.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import field
from typing import Any, ClassVar

import aiohttp
import orjson

from adapters.credentials import (
    AcquirerToken,
    Credential,
    NetworkToken,
    StoredCredential,
    VaultCard,
)
from adapters.declines import Decline, DeclineCode
from adapters.errors import CredentialRefused, IntegrationError, OutcomeUnknown
from adapters.forwarding import Forwarder, Outbound
from adapters.settings import AcquirerSettings, Timeouts
from adapters.transport import HttpReply, tls_context, transport_boundary
from adapters.values import frozen

#: the router's request id, sent on to acquirers for tracing across both logs
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "payrouter_request_id", default=None
)

#: trace context headers (W3C traceparent) to send on, when tracing is on
TRACE_HEADERS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "payrouter_trace_headers", default=None
)


class Operation(enum.StrEnum):
    AUTHORIZE = "authorize"
    SALE = "sale"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"
    AUTHENTICATE = "authenticate"  # completing 3-D Secure / a redirect

    @property
    def creates(self) -> bool:
        return self in (Operation.AUTHORIZE, Operation.SALE)


class ResultStatus(enum.StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    PENDING = "pending"


@frozen
class NextAction:
    """What the shopper must do before the acquirer can answer (3-D Secure, redirects)."""

    type: str  # "redirect" or "sdk"
    url: str | None = None
    method: str = "GET"
    data: Mapping[str, Any] = field(default_factory=dict)


@frozen
class AcquirerResult:
    """The acquirer's definite answer to one operation."""

    status: ResultStatus
    acquirer_reference: str | None = None
    decline: Decline | None = None
    #: for creates: True when the funds are captured, False when only authorized
    #: (a sale answered "authorised" still has its capture to come)
    captured: bool | None = None
    next_action: NextAction | None = None
    #: the scheme's transaction id, for later merchant-initiated payments
    network_transaction_id: str | None = None

    @property
    def approved(self) -> bool:
        return self.status is ResultStatus.APPROVED


# --------------------------------------------------------------------------- orders


@frozen
class PaymentOrder:
    """Authorize or sale.  ``idempotency_key`` is the *acquirer* key the router
    derived; it is sent unchanged on every replay."""

    payment_id: str
    amount: int
    currency: str
    credential: Credential
    capture: bool
    idempotency_key: str
    merchant_reference: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    shopper_reference: str | None = None
    stored_credential: StoredCredential | None = None
    return_url: str | None = None
    description: str | None = None

    @property
    def operation(self) -> Operation:
        return Operation.SALE if self.capture else Operation.AUTHORIZE


@frozen
class FollowOnOrder:
    """Capture, void or refund of a payment the acquirer already knows."""

    payment_id: str
    acquirer_reference: str
    amount: int
    currency: str
    idempotency_key: str
    refund_id: str | None = None
    merchant_reference: str | None = None
    reason: str | None = None


@frozen
class AuthenticationOrder:
    """Finish what a pending create asked the shopper to do (3-D Secure)."""

    payment_id: str
    acquirer_reference: str | None
    #: for a request that submits the details (Adyen /payments/details)
    idempotency_key: str
    details: Mapping[str, str]
    capture: bool
    #: the pending create's own key: a status read asks about that create
    create_key: str


@frozen
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


class Adapter(ABC):
    """One acquirer.  Implementations build wire requests and map replies; the
    HTTP plumbing and the exception boundary live here so every adapter gets
    the same safety rules."""

    kind: ClassVar[str] = "abstract"
    #: True when ``status`` answering None PROVES the acquirer never processed a
    #: request under that key (it records keys before acting on them).  Only
    #: then may the reconciler, after a grace period, settle "unknown" as
    #: "not processed"; otherwise an unknown stays unknown until proven.
    status_is_authoritative: ClassVar[bool] = False
    #: True when :meth:`find` can look a create up by our key or payment id
    finds_creates: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        settings: AcquirerSettings,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        vaults: Mapping[str, Forwarder] | None = None,
    ) -> None:
        self.name = name
        #: the vaults this acquirer's card requests may be forwarded through
        self.vaults: Mapping[str, Forwarder] = vaults or {}
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self._session = session
        self.timeouts: Timeouts = settings.timeouts
        self.tls = tls_context(settings)
        self._client_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.timeouts.connect_s,
            sock_connect=self.timeouts.connect_s,
            sock_read=self.timeouts.read_s,
        )

    def _api_key(self) -> str:
        assert self.settings.api_key is not None  # the settings validator requires it
        return self.settings.api_key.get()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        card: VaultCard | None = None,
    ) -> HttpReply:
        """Send one request and read the whole reply inside the boundary, so a
        reset while reading the body is classified like any other.  With
        ``card``, the request goes through that card's vault, which fills in
        the placeholders the body carries (:mod:`adapters.forwarding`)."""
        body: bytes | str | None = data
        hdrs = dict(headers or {})
        rid = REQUEST_ID.get()
        if rid is not None:
            hdrs.setdefault("X-Request-Id", rid)
        trace = TRACE_HEADERS.get()
        if trace:
            hdrs.update(trace)
        if json is not None:
            body = orjson.dumps(json)
            hdrs.setdefault("Content-Type", "application/json")
        if card is not None:
            return await self._forward(method, path, hdrs, body, card)
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

    async def _forward(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | str | None,
        card: VaultCard,
    ) -> HttpReply:
        forwarder = self.vaults.get(card.vault)
        if forwarder is None:  # eligibility is checked before: a bug, not a decline
            raise IntegrationError(self.name, "vault_not_configured", card.vault)
        raw = body.encode() if isinstance(body, str) else (body or b"")
        outbound = Outbound(method, self.base_url + path, headers, raw)
        async with transport_boundary(self.name):
            return await forwarder.send(self._session, outbound, card, timeout=self._client_timeout)

    def parse_json(self, reply: HttpReply) -> Any:
        """A 2xx we cannot parse may still have moved money."""
        try:
            return reply.json()
        except orjson.JSONDecodeError as exc:
            raise OutcomeUnknown(self.name, "unparsable_response", str(exc)) from exc

    #: the credentials this acquirer's API takes (beside its own tokens)
    takes: ClassVar[frozenset[type]] = frozenset({AcquirerToken})

    @classmethod
    def refuses(cls, credential: Credential) -> str | None:
        """Why this kind of acquirer cannot use ``credential`` (None: it can)."""
        if type(credential) in cls.takes:
            return None
        what = {VaultCard: "forwarded vault cards", NetworkToken: "network tokens"}
        return f"{cls.kind} does not take {what.get(type(credential), 'this credential')}"

    @classmethod
    def limits(cls, order: PaymentOrder) -> list[str]:
        """Limits of this acquirer's API that the order breaks (checked before
        sending: routing leaves the acquirer out, naming them)."""
        return []

    async def create(self, order: PaymentOrder) -> AcquirerResult:
        """Authorize (``order.capture`` false) or sale.  A credential the
        acquirer or vault does not know is a decline of this payment, whoever
        noticed it, and never trouble with the acquirer."""
        try:
            return await self._create(order)
        except CredentialRefused as exc:
            decline = Decline(DeclineCode.INVALID_CREDENTIAL, exc.raw[:64])
            return AcquirerResult(ResultStatus.DECLINED, decline=decline)

    @abstractmethod
    async def _create(self, order: PaymentOrder) -> AcquirerResult:
        """The acquirer's create; raises CredentialRefused for an unknown credential."""

    @abstractmethod
    async def capture(self, order: FollowOnOrder) -> AcquirerResult: ...

    @abstractmethod
    async def void(self, order: FollowOnOrder) -> AcquirerResult: ...

    @abstractmethod
    async def refund(self, order: FollowOnOrder) -> AcquirerResult: ...

    async def authenticate(self, order: AuthenticationOrder) -> AcquirerResult:
        """Submit what the shopper's authentication returned; default: read the status."""
        result = await self.status(
            StatusQuery(
                Operation.SALE if order.capture else Operation.AUTHORIZE,
                order.payment_id,
                order.create_key,
                order.acquirer_reference,
            )
        )
        if result is None:
            raise OutcomeUnknown(self.name, "authentication_result_unknown")
        return result

    @abstractmethod
    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        """The acquirer's record of one operation, or None when it has none
        (which does not prove the operation was never processed)."""

    async def abandon(self, query: StatusQuery) -> AcquirerResult | None:
        """Give up a create still waiting for the shopper past its window: the
        create's answer afterwards (declined, or approved if the shopper made
        it after all), or None when this acquirer cannot be asked to."""
        return None

    async def find(self, query: StatusQuery) -> AcquirerResult | None:
        """Look a create up by our key or payment id, when the acquirer can;
        used before failing over a payment whose record a store failover lost."""
        return None

    @abstractmethod
    async def health(self) -> None:
        """Return when the acquirer answers; raise an AcquirerError otherwise."""


async def sleep_backoff(attempt: int, base: float = 0.05, cap: float = 1.0) -> None:
    """Small capped exponential pause between same-acquirer replays."""
    await asyncio.sleep(min(cap, base * (2**attempt)))
