"""Vault forwarding: an acquirer request that leaves with card fields payrouter
never sees.

An adapter writes its ordinary card request, but where the card number,
expiry, CVC and holder go it writes *placeholders* naming the vault token
(:func:`card_fields`).  A :class:`Forwarder` then sends the request through
the vault, which swaps the placeholders for the card it holds on the way to
the acquirer.  The card passes the vault and the acquirer, never payrouter,
so payrouter stays out of PCI DSS scope for it.

Two wire shapes:

* ``stripe_forwarding`` -- Stripe's Forwarding API: ``POST /v1/forwarding/requests``
  with the destination ``url``, the vault token as ``payment_method``, the
  fields to fill as ``replacements`` and the destination request as
  ``request[body]`` / ``request[headers]``; the destination's answer comes
  back in ``response_details``.
* ``proxy`` -- an outbound HTTP proxy that swaps aliases as the request
  passes (VGS style): the request goes to the acquirer as usual, through the
  proxy.

A placeholder is ``{{<token>:<field>}}``; an integer field is written as a
string ``{{<token>:<field>:int}}`` and revealed as a bare number, so the
acquirer receives its own schema.  :func:`reveal` is that substitution (the
sandbox vault uses it; a real vault is configured to do the same).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.credentials import VaultCard
from adapters.errors import CredentialRefused, IntegrationError, NotProcessed, OutcomeUnknown
from adapters.settings import EnvSecret
from adapters.transport import HttpReply
from adapters.values import frozen

#: the error code of a vault that could not connect to the destination at all
#: (the sandbox vault's; nothing was sent, so the payment may fail over)
UNREACHABLE = "destination_unreachable"

#: what a vault may fill in, as Stripe's ``replacements`` names them
REPLACEMENTS = ("card_number", "card_expiry", "card_cvc", "cardholder_name")


@frozen
class CardFields:
    """What an adapter writes where the card goes: strings, or, for an API
    whose expiry fields are numbers, the ``*_int`` placeholders."""

    number: str
    cvc: str
    holder: str
    expiry_month: str  # "03"
    expiry_year: str  # "2030"
    expiry_month_int: str  # revealed as 3
    expiry_year_int: str  # revealed as 2030


def card_fields(card: VaultCard) -> CardFields:
    def field(name: str, suffix: str = "") -> str:
        return "{{" + f"{card.token}:{name}{suffix}" + "}}"

    return CardFields(
        number=field("number"),
        cvc=field("cvc"),
        holder=field("holder"),
        expiry_month=field("exp_month"),
        expiry_year=field("exp_year"),
        expiry_month_int=field("exp_month", ":int"),
        expiry_year_int=field("exp_year", ":int"),
    )


_PLACEHOLDER = re.compile(r'"\{\{([A-Za-z0-9_\-.]+):([a-z_]+)(:int)?\}\}"')


def reveal(body: bytes, cards: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Swap every placeholder for the card field it names (JSON bodies).
    Raises KeyError for a token the vault does not hold."""

    def one(match: re.Match[str]) -> str:
        value = cards[match.group(1)][match.group(2)]
        if match.group(3):
            return str(int(value))
        text = f"{int(value):02d}" if match.group(2) == "exp_month" else str(value)
        return orjson.dumps(text).decode()

    return _PLACEHOLDER.sub(one, body.decode()).encode()


@frozen
class Outbound:
    """The acquirer request as the adapter wrote it."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


class Forwarder(Protocol):
    @property
    def name(self) -> str: ...

    async def send(
        self, session: aiohttp.ClientSession, request: Outbound, card: VaultCard, **kwargs: Any
    ) -> HttpReply:
        """Send through the vault; the reply is the acquirer's (raises the
        transport exceptions of the aiohttp call, mapped by the caller)."""
        ...


def _form(pairs: Sequence[tuple[str, str]]) -> str:
    from urllib.parse import quote

    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in pairs)


@dataclass(frozen=True)
class StripeForwarding:
    """Stripe's Forwarding API (``forwarding.request``)."""

    name: str
    base_url: str
    api_key: str

    def _params(self, request: Outbound, card: VaultCard) -> list[tuple[str, str]]:
        pairs = [
            ("payment_method", card.token),
            ("url", request.url),
            ("request[body]", request.body.decode()),
        ]
        pairs += [(f"replacements[{i}]", field) for i, field in enumerate(REPLACEMENTS)]
        for index, (name, value) in enumerate(request.headers.items()):
            pairs += [
                (f"request[headers][{index}][name]", name),
                (f"request[headers][{index}][value]", value),
            ]
        return pairs

    async def send(
        self, session: aiohttp.ClientSession, request: Outbound, card: VaultCard, **kwargs: Any
    ) -> HttpReply:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        key = next((v for k, v in request.headers.items() if "idempotency" in k.lower()), None)
        if key is not None:  # the vault's own idempotency: a replay is not forwarded twice
            headers["Idempotency-Key"] = key
        async with session.post(
            self.base_url.rstrip("/") + "/v1/forwarding/requests",
            data=_form(self._params(request, card)),
            headers=headers,
            **kwargs,
        ) as resp:
            payload = await resp.read()
            status = resp.status
        return _destination_reply(self.name, status, payload)


def _destination_reply(vault: str, status: int, payload: bytes) -> HttpReply:
    """The acquirer's answer inside the vault's; the vault's own errors mapped."""
    if status == 502 and _error_code(payload) == UNREACHABLE:
        raise NotProcessed(vault, UNREACHABLE)
    if status >= 500 or status in (408, 409):
        raise OutcomeUnknown(vault, f"vault_http_{status}")  # it may have forwarded
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise OutcomeUnknown(vault, "vault_unparsable_response") from exc
    if status != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        error = error if isinstance(error, dict) else {}
        if error.get("code") == "resource_missing" and error.get("param") == "payment_method":
            raise CredentialRefused(vault, "vault_token_unknown")
        raise IntegrationError(vault, f"vault_{error.get('code') or status}", str(error)[:200])
    details = body.get("response_details") if isinstance(body, dict) else None
    if not isinstance(details, dict) or not isinstance(details.get("status"), int):
        raise OutcomeUnknown(vault, "vault_no_response_details")
    headers = {
        str(h.get("name")): str(h.get("value"))
        for h in details.get("headers") or []
        if isinstance(h, dict)
    }
    return HttpReply(int(details["status"]), headers, str(details.get("body") or "").encode())


def _error_code(payload: bytes) -> object:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


@dataclass(frozen=True)
class ProxyForwarding:
    """An outbound proxy that reveals aliases as requests pass through it."""

    name: str
    proxy_url: str

    async def send(
        self, session: aiohttp.ClientSession, request: Outbound, card: VaultCard, **kwargs: Any
    ) -> HttpReply:
        async with session.request(
            request.method,
            request.url,
            data=request.body,
            headers=dict(request.headers),
            proxy=self.proxy_url,
            **kwargs,
        ) as resp:
            return HttpReply(resp.status, dict(resp.headers), await resp.read())


class VaultSettings(BaseModel):
    """One vault in the config's ``vaults`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["stripe_forwarding", "proxy"]
    base_url: str | None = Field(None, description="stripe_forwarding: the API's base URL")
    api_key: EnvSecret | None = None
    proxy_url: str | None = Field(None, description="proxy: http://host:port of the proxy")
    embedded: bool = Field(False, description="start the sandbox vault in the router (demo)")
    acquirers: list[str] = Field(
        default_factory=list,
        description="the acquirers the vault forwards to (its configured destinations); "
        "empty: every acquirer that takes forwarded cards",
    )

    @model_validator(mode="after")
    def _where(self) -> VaultSettings:
        if self.kind == "stripe_forwarding" and not (self.embedded or self.base_url):
            raise ValueError("a stripe_forwarding vault needs base_url (or embedded: true)")
        if self.kind == "stripe_forwarding" and not self.embedded and self.api_key is None:
            raise ValueError("a stripe_forwarding vault needs api_key: {env: NAME}")
        if self.kind == "proxy" and not (self.proxy_url or "").startswith("http"):
            raise ValueError("a proxy vault needs proxy_url: http://host:port")
        if self.kind == "proxy" and self.embedded:
            raise ValueError("only a stripe_forwarding vault can be embedded")
        return self

    def forwards_to(self, acquirer: str) -> bool:
        return not self.acquirers or acquirer in self.acquirers


def build_forwarder(name: str, settings: VaultSettings, base_url: str | None = None) -> Forwarder:
    """``base_url``: where an embedded sandbox vault listens."""
    if settings.kind == "proxy":
        assert settings.proxy_url is not None
        return ProxyForwarding(name, settings.proxy_url)
    url = base_url or settings.base_url
    assert url is not None
    key = settings.api_key.get() if settings.api_key else "sandbox-vault-key"
    return StripeForwarding(name, url, key)
