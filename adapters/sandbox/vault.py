"""The sandbox vault: a real HTTP server that holds test cards and forwards
card requests to acquirers, filling the card in on the way.

It speaks the two wire shapes of :mod:`adapters.forwarding`:

* Stripe's Forwarding API: ``POST /v1/forwarding/requests`` (form-encoded:
  ``payment_method``, ``url``, ``replacements[]``, ``request[body]``,
  ``request[headers][i][name|value]``), answering a ``forwarding.request``
  with ``response_details``; a repeated ``Idempotency-Key`` answers what the
  first request got, without forwarding again;
* an outbound proxy: a request sent to it in absolute form
  (``POST http://acquirer/...``) is forwarded with the placeholders revealed.

Cards are added with ``POST /v1/cards`` (what a shopper's browser would do;
payrouter never does) and some test cards are there from the start.  It
forwards only to loopback addresses.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from adapters.forwarding import UNREACHABLE, reveal
from adapters.sandbox.server import NOT_PROCESSED_HEADER

#: tokens the vault holds from the start (the sandbox acquirer's test cards)
TEST_CARDS: dict[str, dict[str, Any]] = {
    "vault_visa": {"number": "4242424242424242", "cvc": "123", "holder": "Ada Lovelace"},
    "vault_mastercard": {"number": "5555555555554444", "cvc": "123", "holder": "Alan Turing"},
    "vault_decline": {"number": "4000000000000002", "cvc": "123", "holder": "Grace Hopper"},
    "vault_insufficient": {"number": "4000000000009995", "cvc": "123", "holder": "Ann Doe"},
    "vault_3ds": {"number": "4000000000003220", "cvc": "123", "holder": "Joan Clarke"},
}
_EXPIRY = {"exp_month": 12, "exp_year": 2030}
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class VaultState:
    cards: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {t: {**c, **_EXPIRY} for t, c in TEST_CARDS.items()}
    )
    #: forwarding answers by Idempotency-Key
    answers: dict[str, bytes] = field(default_factory=dict)
    #: every destination request, as the acquirer received it (tests read it)
    forwarded: list[tuple[str, bytes]] = field(default_factory=list)


STATE = web.AppKey("vault_state", VaultState)
SESSION = web.AppKey("vault_session", aiohttp.ClientSession)


def _error(status: int, code: str, message: str, param: str | None = None) -> web.Response:
    error = {"code": code, "message": message, **({"param": param} if param else {})}
    return web.Response(
        status=status, body=orjson.dumps({"error": error}), content_type="application/json"
    )


def _headers(form: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    index = 0
    while f"request[headers][{index}][name]" in form:
        headers[str(form[f"request[headers][{index}][name]"])] = str(
            form[f"request[headers][{index}][value]"]
        )
        index += 1
    return headers


async def _send(
    request: web.Request, method: str, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    try:
        revealed = reveal(body, request.app[STATE].cards)
    except KeyError:
        raise LookupError("a placeholder names a token this vault does not hold") from None
    try:
        async with request.app[SESSION].request(
            method, url, data=revealed, headers=headers
        ) as resp:
            request.app[STATE].forwarded.append((url, revealed))
            return resp.status, dict(resp.headers), await resp.read()
    except aiohttp.ClientConnectorError as exc:  # no connection: nothing was sent
        raise Unreachable(str(exc)) from None


class Unreachable(Exception):
    """The destination refused the connection: the request never left."""


def _unreachable(exc: Unreachable, *, proxy: bool = False) -> web.Response:
    """As a forwarding API: 502 with its own error code.  As a proxy, whose
    answers the adapter reads as the acquirer's: the sandbox acquirer's own
    "not processed" (503, Transient-Error)."""
    response = _error(503 if proxy else 502, UNREACHABLE, f"nothing sent: {exc}")
    if proxy:
        response.headers[NOT_PROCESSED_HEADER] = "true"
    return response


async def forwarding_request(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = request.headers.get("Idempotency-Key")
    if key is not None and key in state.answers:
        return web.Response(body=state.answers[key], content_type="application/json")
    form = await request.post()
    token, url = str(form.get("payment_method", "")), str(form.get("url", ""))
    if token not in state.cards:
        return _error(400, "resource_missing", "no such payment method", "payment_method")
    if URL(url).host not in _LOOPBACK:
        return _error(400, "url_invalid", "the sandbox vault forwards to loopback only", "url")
    headers = _headers(form)
    try:
        status, reply_headers, body = await _send(
            request, "POST", url, headers, str(form.get("request[body]", "")).encode()
        )
    except LookupError as exc:
        return _error(400, "resource_missing", str(exc), "payment_method")
    except Unreachable as exc:
        return _unreachable(exc)
    answer = orjson.dumps(
        {
            "id": "fwdreq_" + secrets.token_hex(8),
            "object": "forwarding.request",
            "payment_method": token,
            "url": url,
            "replacements": [v for k, v in form.items() if k.startswith("replacements[")],
            "response_details": {
                "status": status,
                "body": body.decode("utf-8", "replace"),
                "headers": [{"name": k, "value": v} for k, v in reply_headers.items()],
            },
        }
    )
    if key is not None:
        state.answers[key] = answer
    return web.Response(body=answer, content_type="application/json")


async def add_card(request: web.Request) -> web.Response:
    """Tokenize a card (the shopper's side: payrouter never calls this)."""
    data = orjson.loads(await request.read() or b"{}")
    number = str(data.get("number", ""))
    if not number.isdigit() or not 13 <= len(number) <= 19:
        return _error(400, "invalid_number", "number must be 13-19 digits", "number")
    token = "vault_" + secrets.token_hex(8)
    request.app[STATE].cards[token] = {
        "number": number,
        "exp_month": int(data.get("exp_month", 12)),
        "exp_year": int(data.get("exp_year", 2030)),
        "cvc": str(data.get("cvc", "")),
        "holder": str(data.get("holder", "")),
    }
    return web.Response(
        status=201,
        body=orjson.dumps({"token": token, "last4": number[-4:]}),
        content_type="application/json",
    )


@web.middleware
async def _proxy(request: web.Request, handler: Any) -> web.StreamResponse:
    """A request in absolute form is one to forward (the proxy shape)."""
    if not request.raw_path.startswith(("http://", "https://")):
        response: web.StreamResponse = await handler(request)
        return response
    url = request.raw_path
    if URL(url).host not in _LOOPBACK:
        return _error(403, "url_invalid", "the sandbox vault forwards to loopback only")
    skip = {"host", "content-length", "proxy-connection", "connection"}
    headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
    try:
        status, reply_headers, body = await _send(
            request, request.method, url, headers, await request.read()
        )
    except LookupError as exc:
        return _error(400, "resource_missing", str(exc), "payment_method")
    except Unreachable as exc:
        return _unreachable(exc, proxy=True)
    keep = {
        k: v for k, v in reply_headers.items() if k.lower() in ("content-type", "transient-error")
    }
    return web.Response(status=status, body=body, headers=keep)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _session_ctx(app: web.Application) -> Any:
    app[SESSION] = aiohttp.ClientSession()
    yield
    await app[SESSION].close()


def create_vault_app() -> web.Application:
    app = web.Application(middlewares=[_proxy])
    app[STATE] = VaultState()
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_post("/v1/forwarding/requests", forwarding_request)
    app.router.add_post("/v1/cards", add_card)
    app.router.add_get("/health", health)
    return app


class SandboxVault:
    """The vault on a loopback port, started and stopped by its owner."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.app = create_vault_app()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)

    @property
    def state(self) -> VaultState:
        return self.app[STATE]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self.port == 0:  # the port the OS chose
            self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        await self._runner.cleanup()
