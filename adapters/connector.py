"""What one acquirer package gives the router: settings, adapter, webhooks.

An acquirer has one home, ``adapters/<kind>/``: its settings model, its
adapter (requests, status maps, decline codes) and its webhook scheme
(signature check, event parsing, the acknowledgement it expects).  The
package exports one :class:`Connector`, and ``adapters/registry.py`` lists the
connectors; that list is all the router knows of acquirer kinds.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson

from adapters.base import AcquirerResult, Adapter, Operation
from adapters.settings import AcquirerSettings
from adapters.values import frozen


class WebhookRefused(Exception):
    """A delivery we will not act on; ``status`` is what the acquirer gets back."""

    status = 400

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def json_object(body: bytes) -> dict[str, Any]:
    """A delivery's body as a JSON object, or the refusal every connector gives."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookRefused("webhook_invalid_json") from exc
    if not isinstance(value, dict):
        raise WebhookRefused("webhook_invalid")
    return value


def text(value: Any) -> str | None:
    """A non-empty string field of a delivery, or None."""
    return value if isinstance(value, str) and value else None


class SignatureInvalid(WebhookRefused):
    """Unsigned, forged, tampered with or stale."""

    status = 401


class Target(enum.StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


@frozen
class AcquirerEvent:
    """One verified event in the router's vocabulary.

    ``reference`` is our payment or refund id, as we sent it to the acquirer;
    ``operation`` None means "the create, or whichever capture/void is open";
    ``payment_reference`` is the acquirer's own id of the payment, checked
    against what the router recorded before the event may change anything.
    """

    event_id: str
    target: Target
    reference: str
    operation: Operation | None
    result: AcquirerResult
    #: the acquirer's own test/live flag when the event carries one
    livemode: bool | None = None
    payment_reference: str | None = None


@frozen
class WebhookAck:
    """What an acquirer expects back once a delivery is accepted."""

    status: int = 200
    content_type: str = "application/json"
    body: bytes = b'{"received":true}'


class Webhooks(Protocol):
    ack: WebhookAck

    def read(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]
    ) -> list[AcquirerEvent]:
        """Verify and parse one delivery.  Raises SignatureInvalid before
        anything of the body is trusted, WebhookRefused for a malformed one."""
        ...


class EmbeddedAcquirer(Protocol):
    """An acquirer simulator the router can run in its own process (the demo)."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@frozen
class Connector:
    kind: str
    settings: type[AcquirerSettings]
    #: the adapter class: built per acquirer, asked per credential (``refuses``)
    adapter: type[Adapter]
    webhooks: Webhooks | None = None
    #: builds the simulator for ``embedded: true`` (only simulators have one)
    embed: Callable[[str, AcquirerSettings], EmbeddedAcquirer] | None = None
    #: its tokens may be all digits (Adyen's stored payment method ids), which
    #: the card-number check must not take for card numbers in a token field
    numeric_tokens: bool = False
