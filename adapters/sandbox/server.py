"""The sandbox acquirer: a real HTTP server that behaves like a card acquirer.

It honours its own idempotency keys (a replay returns the stored answer, a
different body under the same key is refused), keeps a ledger of every money
movement so tests and benchmarks can count double charges, and injects faults
by rule (admin endpoint or config) or by test token (``tok_fault_<mode>``,
``tok_decline_<code>``, ``tok_pending``).

Wire format (JSON):
  POST /v1/charges                {amount, currency, payment_method, capture, reference}
  POST /v1/charges/{id}/capture   {amount}
  POST /v1/charges/{id}/void      {}
  POST /v1/charges/{id}/refunds   {amount, reference}
  GET  /v1/charges/{id}
  GET  /v1/operations/{idempotency_key}   the stored answer for a key, 404 if none
  GET  /health
Admin: GET /_sandbox/ledger, PUT /_sandbox/faults, POST /_sandbox/charges/{id}/settle
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import secrets
import ssl
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from adapters.sandbox.faults import PROCESSED_MODES, FaultBook, FaultMode, FaultRule, token_fault

NOT_PROCESSED_HEADER = "Transient-Error"


@dataclass
class Charge:
    id: str
    reference: str
    amount: int
    currency: str
    status: str  # authorized | captured | voided | declined | pending
    captured_amount: int = 0
    refunded_amount: int = 0
    decline_code: str | None = None
    refunds: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("refunds")
        return data


@dataclass
class Stored:
    fingerprint: str
    status: int = 0
    body: bytes = b""
    done: bool = False


@dataclass
class SandboxState:
    name: str
    api_key: str | None = None
    charges: dict[str, Charge] = field(default_factory=dict)
    keys: dict[str, Stored] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    faults: FaultBook = field(default_factory=FaultBook)
    requests_seen: int = 0
    last_request_id: str | None = None
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def record(self, kind: str, charge: Charge, amount: int, key: str) -> None:
        self.ledger.append(
            {
                "seq": next(self._seq),
                "kind": kind,
                "charge_id": charge.id,
                "reference": charge.reference,
                "amount": amount,
                "currency": charge.currency,
                "idempotency_key": key,
                "at": time.time(),
            }
        )


STATE_KEY = web.AppKey("sandbox_state", SandboxState)
SERVER_KEY: web.AppKey[SandboxServer] = web.AppKey("sandbox_server")

_rules_adapter = TypeAdapter(list[FaultRule])


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _error(status: int, code: str, message: str, **extra: str) -> web.Response:
    return _json(status, {"error": {"code": code, "message": message}}, extra or None)


class _Reply(Exception):
    """Early exit carrying a response (keeps the handlers linear)."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise _Reply(_error(400, "invalid_json", "body is not JSON")) from exc
    if not isinstance(data, dict):
        raise _Reply(_error(400, "invalid_json", "body must be an object"))
    return data


def _int_field(data: dict[str, Any], name: str, minimum: int = 1) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _Reply(_error(400, "invalid_request", f"{name} must be an integer >= {minimum}"))
    return value


def _declined(charge: Charge | None, code: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"status": "declined", "decline_code": code, **extra}
    if charge is not None:
        body["charge_id"] = charge.id
    return 402, body


# ------------------------------------------------------------------- operations


def _create(
    state: SandboxState, data: dict[str, Any], key: str, decline: str | None = None
) -> tuple[int, dict[str, Any]]:
    amount = _int_field(data, "amount")
    currency = data.get("currency")
    token = data.get("payment_method")
    if not isinstance(currency, str) or not isinstance(token, str):
        raise _Reply(_error(400, "invalid_request", "currency and payment_method are required"))
    reference = str(data.get("reference") or "")
    charge = Charge(
        id="ch_" + secrets.token_hex(10),
        reference=reference,
        amount=amount,
        currency=currency,
        status="pending",
    )
    state.charges[charge.id] = charge
    if decline is None and token.startswith("tok_decline_"):
        decline = token.removeprefix("tok_decline_") or "do_not_honor"
    if decline is not None:
        charge.status, charge.decline_code = "declined", decline
        return 201, charge.view()
    if token == "tok_pending":
        state.record("pending", charge, amount, key)
        body = charge.view() | {"redirect_url": f"https://sandbox.invalid/3ds/{charge.id}"}
        return 201, body
    if data.get("capture", True):
        charge.status = "captured"
        charge.captured_amount = amount
        state.record("sale", charge, amount, key)
    else:
        charge.status = "authorized"
        state.record("authorization", charge, amount, key)
    return 201, charge.view()


def _charge(state: SandboxState, charge_id: str) -> Charge:
    charge = state.charges.get(charge_id)
    if charge is None:
        raise _Reply(_error(404, "no_such_charge", f"charge {charge_id} does not exist"))
    return charge


def _capture(
    state: SandboxState, charge: Charge, data: dict[str, Any], key: str
) -> tuple[int, dict[str, Any]]:
    amount = _int_field(data, "amount") if "amount" in data else charge.amount
    if charge.status != "authorized":
        return _declined(charge, "invalid_state", charge_status=charge.status)
    if amount > charge.amount:
        return _declined(charge, "amount_exceeds_authorization")
    charge.status = "captured"
    charge.captured_amount = amount
    state.record("capture", charge, amount, key)
    return 200, charge.view()


def _void(state: SandboxState, charge: Charge, key: str) -> tuple[int, dict[str, Any]]:
    if charge.status != "authorized":
        return _declined(charge, "invalid_state", charge_status=charge.status)
    charge.status = "voided"
    state.record("void", charge, charge.amount, key)
    return 200, charge.view()


def _refund(
    state: SandboxState, charge: Charge, data: dict[str, Any], key: str
) -> tuple[int, dict[str, Any]]:
    amount = _int_field(data, "amount")
    if charge.status != "captured":
        return _declined(charge, "invalid_state", charge_status=charge.status)
    if charge.refunded_amount + amount > charge.captured_amount:
        return _declined(charge, "amount_exceeds_captured")
    charge.refunded_amount += amount
    refund = {
        "id": "re_" + secrets.token_hex(10),
        "charge_id": charge.id,
        "amount": amount,
        "currency": charge.currency,
        "status": "succeeded",
        "reference": str(data.get("reference") or ""),
    }
    charge.refunds.append(refund)
    state.record("refund", charge, amount, key)
    return 201, refund


# --------------------------------------------------------------------- handlers


async def _serve_mutation(request: web.Request, op: str) -> web.StreamResponse:
    """Idempotency, faults and processing for every POST, in that order."""
    state = request.app[STATE_KEY]
    state.requests_seen += 1
    state.last_request_id = request.headers.get("X-Request-Id")
    if state.api_key is not None and request.headers.get("Authorization") != (
        f"Bearer {state.api_key}"
    ):
        return _error(401, "unauthorized", "bad credentials")
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        return _error(400, "idempotency_key_missing", "Idempotency-Key header is required")
    raw = await request.read()
    fingerprint = hashlib.sha256(request.path.encode() + b"\0" + raw).hexdigest()

    rules = state.faults.draw(mutating=True)
    for rule in rules:
        if rule.mode is FaultMode.LATENCY:
            await asyncio.sleep(rule.latency_ms / 1000)
    failure = next((r for r in rules if r.mode is not FaultMode.LATENCY), None)

    stored = state.keys.get(key)
    if stored is not None:
        if stored.fingerprint != fingerprint:
            return _error(422, "idempotency_key_reused", "key was used with another request")
        if not stored.done:
            return _error(409, "idempotency_in_progress", "a request with this key is running")
        if failure is None or failure.mode not in PROCESSED_MODES:
            return _stored_reply(stored, replayed=True)
        return await _fail_after(request, failure, stored)

    if failure is not None and failure.mode is FaultMode.UNAVAILABLE:
        return _error(503, "unavailable", "try again", **{NOT_PROCESSED_HEADER: "true"})
    if failure is not None and failure.mode is FaultMode.DROP:
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=500)  # never reaches the client
    if failure is not None and failure.mode is FaultMode.REFUSE_CONNECTIONS:
        request.app[SERVER_KEY].refuse_for(failure.duration_s)
        assert request.transport is not None
        request.transport.abort()  # this one too: nothing was processed
        return web.Response(status=503)

    stored = Stored(fingerprint)
    state.keys[key] = stored
    try:
        data = await _body(request)
        if failure is None and op == "create":
            failure = token_fault(str(data.get("payment_method", "")))
        decline = failure.decline_code if failure and failure.mode is FaultMode.DECLINE else None
        status, body = _dispatch(state, request, op, data, key, decline)
    except _Reply as reply:
        del state.keys[key]  # a refused request is not stored, like real acquirers
        return reply.response
    stored.status, stored.body, stored.done = status, orjson.dumps(body), True
    if failure is not None and failure.mode in PROCESSED_MODES:
        return await _fail_after(request, failure, stored)
    return _stored_reply(stored, replayed=False)


def _dispatch(
    state: SandboxState,
    request: web.Request,
    op: str,
    data: dict[str, Any],
    key: str,
    decline: str | None,
) -> tuple[int, dict[str, Any]]:
    if op == "create":
        return _create(state, data, key, decline)
    charge = _charge(state, request.match_info["charge_id"])
    if op == "capture":
        return _capture(state, charge, data, key)
    if op == "void":
        return _void(state, charge, key)
    return _refund(state, charge, data, key)


def _stored_reply(stored: Stored, *, replayed: bool) -> web.Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return web.Response(
        status=stored.status, body=stored.body, content_type="application/json", headers=headers
    )


async def _fail_after(request: web.Request, rule: FaultRule, stored: Stored) -> web.StreamResponse:
    """The money has moved; now make the answer go wrong."""
    if rule.mode is FaultMode.ERROR_500:
        return _error(500, "internal_error", "something broke")
    if rule.mode is FaultMode.GARBLED:
        return web.Response(status=200, body=b"<html>gateway</html>", content_type="text/html")
    if rule.mode is FaultMode.TIMEOUT_AFTER_PROCESSING:
        await asyncio.sleep(rule.hang_s)
        return _stored_reply(stored, replayed=False)
    # reset mid-response: headers and half a body, then cut the connection
    response = web.StreamResponse(status=stored.status)
    response.content_type = "application/json"
    response.content_length = len(stored.body)
    await response.prepare(request)
    await response.write(stored.body[: max(1, len(stored.body) // 2)])
    assert request.transport is not None
    request.transport.abort()
    return response


async def create_charge(request: web.Request) -> web.StreamResponse:
    return await _serve_mutation(request, "create")


async def capture_charge(request: web.Request) -> web.StreamResponse:
    return await _serve_mutation(request, "capture")


async def void_charge(request: web.Request) -> web.StreamResponse:
    return await _serve_mutation(request, "void")


async def refund_charge(request: web.Request) -> web.StreamResponse:
    return await _serve_mutation(request, "refund")


async def _read_faults(request: web.Request) -> web.Response | None:
    """Faults marked ``applies_to: all`` also hit reads; None means proceed."""
    state = request.app[STATE_KEY]
    for rule in state.faults.draw(mutating=False):
        if rule.mode is FaultMode.LATENCY:
            await asyncio.sleep(rule.latency_ms / 1000)
        elif rule.mode is FaultMode.UNAVAILABLE:
            return _error(503, "unavailable", "try again", **{NOT_PROCESSED_HEADER: "true"})
        elif rule.mode is FaultMode.TIMEOUT_AFTER_PROCESSING:
            await asyncio.sleep(rule.hang_s)
        else:
            return _error(500, "internal_error", "something broke")
    return None


async def get_charge(request: web.Request) -> web.Response:
    if (fault := await _read_faults(request)) is not None:
        return fault
    state = request.app[STATE_KEY]
    try:
        charge = _charge(state, request.match_info["charge_id"])
    except _Reply as reply:
        return reply.response
    return _json(200, charge.view() | {"refunds": charge.refunds})


async def get_operation(request: web.Request) -> web.Response:
    if (fault := await _read_faults(request)) is not None:
        return fault
    stored = request.app[STATE_KEY].keys.get(request.match_info["key"])
    if stored is None:
        return _error(404, "no_such_operation", "no request was processed under this key")
    if not stored.done:
        return _error(409, "idempotency_in_progress", "still processing")
    return web.Response(
        status=200,
        body=orjson.dumps({"http_status": stored.status, "response": orjson.loads(stored.body)}),
        content_type="application/json",
    )


async def health(request: web.Request) -> web.Response:
    if request.app[STATE_KEY].faults.draw(mutating=False, health=True):
        return _error(503, "unhealthy", "sandbox says no")
    return _json(200, {"status": "ok", "acquirer": request.app[STATE_KEY].name})


async def ledger(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _json(
        200,
        {
            "acquirer": state.name,
            "charges": [c.view() for c in state.charges.values()],
            "events": state.ledger,
            "requests_seen": state.requests_seen,
        },
    )


async def put_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        rules = _rules_adapter.validate_json(await request.read() or b"[]")
    except ValidationError as exc:
        return _error(400, "invalid_faults", exc.errors(include_url=False)[0]["msg"])
    state.faults.replace(rules)
    return _json(200, {"faults": [r.model_dump(mode="json") for r in rules]})


async def outage(request: web.Request) -> web.Response:
    """Go down now for ``seconds`` (port closed, connections dropped), then recover."""
    try:
        seconds = float((await _body(request)).get("seconds", 5))
    except (_Reply, TypeError, ValueError):
        return _error(400, "invalid_request", 'send {"seconds": N}')
    if not 0 < seconds <= 600:
        return _error(400, "invalid_request", "seconds must be in (0, 600]")
    request.app[SERVER_KEY].refuse_for(seconds)
    return _json(202, {"down_for_s": seconds})


async def settle_pending(request: web.Request) -> web.Response:
    """Play the shopper finishing 3-D Secure: a pending charge becomes final."""
    state = request.app[STATE_KEY]
    try:
        charge = _charge(state, request.match_info["charge_id"])
        data = await _body(request)
    except _Reply as reply:
        return reply.response
    if charge.status != "pending":
        return _error(409, "not_pending", f"charge is {charge.status}")
    if data.get("approve", True):
        charge.status = "captured" if data.get("capture", True) else "authorized"
        charge.captured_amount = charge.amount if charge.status == "captured" else 0
        state.record(
            "sale" if charge.status == "captured" else "authorization",
            charge,
            charge.amount,
            "settle",
        )
    else:
        charge.status, charge.decline_code = "declined", str(data.get("decline_code", "refused"))
    return _json(200, charge.view())


def create_sandbox_app(
    name: str,
    *,
    api_key: str | None = None,
    faults: list[FaultRule] | None = None,
    seed: int | None = None,
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[STATE_KEY] = SandboxState(name=name, api_key=api_key, faults=FaultBook(faults, seed))
    app.router.add_post("/v1/charges", create_charge)
    app.router.add_post("/v1/charges/{charge_id}/capture", capture_charge)
    app.router.add_post("/v1/charges/{charge_id}/void", void_charge)
    app.router.add_post("/v1/charges/{charge_id}/refunds", refund_charge)
    app.router.add_get("/v1/charges/{charge_id}", get_charge)
    app.router.add_get("/v1/operations/{key}", get_operation)
    app.router.add_get("/health", health)
    app.router.add_get("/_sandbox/ledger", ledger)
    app.router.add_put("/_sandbox/faults", put_faults)
    app.router.add_post("/_sandbox/outage", outage)
    app.router.add_post("/_sandbox/charges/{charge_id}/settle", settle_pending)
    return app


class SandboxServer:
    """Owns the runner and listener so faults can close and reopen the port."""

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        faults: list[FaultRule] | None = None,
        seed: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._ssl = ssl_context
        self.app = create_sandbox_app(name, api_key=api_key, faults=faults, seed=seed)
        self.app[SERVER_KEY] = self
        self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
        self._site: web.TCPSite | None = None
        self._reopen: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def state(self) -> SandboxState:
        return self.app[STATE_KEY]

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._runner.server is None:
            await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        self._site = web.TCPSite(
            self._runner, self.host, self.port, reuse_address=True, ssl_context=self._ssl
        )
        await self._site.start()
        if self.port == 0:
            self.port = self._bound_port()

    def _bound_port(self) -> int:
        assert self._runner.addresses, "the sandbox is not listening"
        return int(self._runner.addresses[0][1])

    async def stop_listening(self) -> None:
        """An outage: the port is closed and open connections are dropped;
        the ledger and idempotency state are kept for when it comes back."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        for conn in list(server.connections if server is not None else []):
            conn.force_close()  # an outage drops every connection, keep-alive ones too

    async def resume_listening(self) -> None:
        if self._site is None:
            await self._listen()

    def refuse_for(self, seconds: float) -> None:
        """Close the port now (after this reply) and reopen it ``seconds`` later."""
        loop = asyncio.get_running_loop()
        self._spawn(self.stop_listening())
        if self._reopen is not None:
            self._reopen.cancel()
        self._reopen = loop.call_later(seconds, lambda: self._spawn(self.resume_listening()))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        with contextlib.suppress(Exception):
            await self._runner.cleanup()
