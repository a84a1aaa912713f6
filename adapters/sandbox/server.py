"""The sandbox acquirer: a real HTTP server that behaves like a card acquirer.

It honours its own idempotency keys (a replay returns the stored answer, a
different body under the same key is refused), keeps the books of
``books.py``, and injects faults by rule (admin endpoint or config) or by
test token (``tok_fault_<mode>``, ``tok_decline_<code>``, ``tok_pending``).

Wire format (JSON):
  POST /v1/charges                {amount, currency, capture, reference, return_url,
                                   one of payment_method (a token), card {number,
                                   exp_month, exp_year, cvc, name} (forwarded by a vault)
                                   or network_token {number, exp_month, exp_year,
                                   cryptogram, eci}; stored_credential {initiator, usage,
                                   sequence, network_transaction_id}}
  POST /v1/charges/{id}/capture   {amount}
  POST /v1/charges/{id}/void      {}
  POST /v1/charges/{id}/cancel    {}   (a charge still waiting for 3-D Secure)
  POST /v1/charges/{id}/refunds   {amount, reference, reason, merchant_reference}
  GET  /v1/charges/{id}
  GET  /v1/operations/{idempotency_key}   the stored answer for a key, 404 if none
  GET  /health
  GET  /3ds/{id}, POST /3ds/{id}  the shopper's 3-D Secure challenge page (approve/deny)
Test cards (forwarded): 4242424242424242 and 5555555555554444 approve,
  4000000000000002 do_not_honor, 4000000000009995 insufficient_funds,
  4000000000000069 expired_card, 4000000000003220 needs 3-D Secure.
Admin: GET /_sandbox/ledger, PUT /_sandbox/faults, POST /_sandbox/outage,
       POST /_sandbox/charges/{id}/settle
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import ssl
from collections.abc import Coroutine
from typing import Any

import orjson
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from adapters.sandbox import books
from adapters.sandbox.books import Received, Refusal, SandboxState, Stored
from adapters.sandbox.faults import (
    BEFORE_PROCESSING,
    PROCESSED_MODES,
    FaultBook,
    FaultMode,
    FaultRule,
    token_fault,
)

NOT_PROCESSED_HEADER = "Transient-Error"

STATE_KEY = web.AppKey("sandbox_state", SandboxState)
SERVER_KEY: web.AppKey[SandboxServer] = web.AppKey("sandbox_server")
#: idempotency keys whose test-token fault has fired (once per key)
FIRED_KEY = web.AppKey("sandbox_token_faults_fired", set[str])

_rules_adapter = TypeAdapter(list[FaultRule])


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _error(status: int, code: str, message: str, **extra: str) -> web.Response:
    return _json(status, {"error": {"code": code, "message": message}}, extra or None)


def _data(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, "invalid_json", "body is not JSON") from exc
    if not isinstance(data, dict):
        raise Refusal(400, "invalid_json", "body must be an object")
    return data


def _stored_reply(stored: Stored, *, replayed: bool) -> web.Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return web.Response(
        status=stored.status, body=stored.body, content_type="application/json", headers=headers
    )


def _faults(request: web.Request, key: str, op: str, data: dict[str, Any]) -> list[FaultRule]:
    """Rules drawn for this request, plus a test token's fault the first time
    its key is seen (so the router's same-key replay is processed normally)."""
    rules = request.app[STATE_KEY].faults.draw(mutating=True)
    fired = request.app[FIRED_KEY]
    if op == "create" and key not in fired:
        chosen = token_fault(str(data.get("payment_method", "")))
        if chosen is not None:
            fired.add(key)
            rules.insert(0, chosen)
    return rules


async def _before(request: web.Request, failure: FaultRule) -> web.StreamResponse:
    """Faults that strike before anything is processed."""
    if failure.mode is FaultMode.UNAVAILABLE:
        return _error(503, "unavailable", "try again", **{NOT_PROCESSED_HEADER: "true"})
    assert request.transport is not None
    if failure.mode is FaultMode.REFUSE_CONNECTIONS:
        request.app[SERVER_KEY].refuse_for(failure.duration_s)
    request.transport.abort()  # the connection is cut: nothing was processed
    return web.Response(status=503)  # never reaches the client


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


def _process(
    request: web.Request,
    op: str,
    key: str,
    fingerprint: str,
    data: dict[str, Any],
    failure: FaultRule | None,
) -> Stored:
    state = request.app[STATE_KEY]
    stored = Stored(fingerprint)
    state.keys[key] = stored
    decline = failure.decline_code if failure and failure.mode is FaultMode.DECLINE else None
    try:
        url = request.app[SERVER_KEY].url if SERVER_KEY in request.app else ""
        status, body = books.dispatch(
            state, op, data, key, request.match_info.get("charge_id"), decline, url
        )
    except Refusal:
        del state.keys[key]  # a refused request is not stored, like real acquirers
        raise
    stored.status, stored.body, stored.done = status, orjson.dumps(body), True
    return stored


@web.middleware
async def _on_the_wire(request: web.Request, handler: Any) -> web.StreamResponse:
    body = await request.read() if request.can_read_body else b""
    request.app[STATE_KEY].wire.append(
        Received(request.method, request.path_qs, tuple(request.headers.items()), body)
    )
    response: web.StreamResponse = await handler(request)
    return response


async def _serve_mutation(request: web.Request, op: str) -> web.StreamResponse:
    """Authentication, idempotency, faults and processing for every POST, in that order."""
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
    try:
        data = _data(raw)
    except Refusal as refusal:
        return _error(refusal.status, refusal.code, refusal.message)
    rules = _faults(request, key, op, data)
    for rule in rules:
        if rule.mode is FaultMode.LATENCY:
            await asyncio.sleep(rule.latency_ms / 1000)
    failure = next((r for r in rules if r.mode is not FaultMode.LATENCY), None)
    stored = state.keys.get(key)
    if stored is not None:
        return await _replay(request, stored, fingerprint, failure)
    if failure is not None and failure.mode in BEFORE_PROCESSING:
        return await _before(request, failure)
    try:
        stored = _process(request, op, key, fingerprint, data, failure)
    except Refusal as refusal:
        return _error(refusal.status, refusal.code, refusal.message)
    if failure is not None and failure.mode in PROCESSED_MODES:
        return await _fail_after(request, failure, stored)
    return _stored_reply(stored, replayed=False)


async def _replay(
    request: web.Request, stored: Stored, fingerprint: str, failure: FaultRule | None
) -> web.StreamResponse:
    if stored.fingerprint != fingerprint:
        return _error(422, "idempotency_key_reused", "key was used with another request")
    if not stored.done:
        return _error(409, "idempotency_in_progress", "a request with this key is running")
    if failure is None or failure.mode not in PROCESSED_MODES:
        return _stored_reply(stored, replayed=True)
    return await _fail_after(request, failure, stored)


async def create_charge(request: web.Request) -> web.StreamResponse:
    return await _serve_mutation(request, "create")


async def capture_charge(request: web.Request) -> web.StreamResponse:
    return await _serve_mutation(request, "capture")


async def void_charge(request: web.Request) -> web.StreamResponse:
    return await _serve_mutation(request, "void")


async def refund_charge(request: web.Request) -> web.StreamResponse:
    return await _serve_mutation(request, "refund")


async def cancel_charge(request: web.Request) -> web.StreamResponse:
    """Give up on a charge still waiting for the shopper (3-D Secure abandoned)."""
    return await _serve_mutation(request, "cancel")


_CHALLENGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>3-D Secure (sandbox)</title></head>
<body style="font-family: sans-serif; max-width: 28em; margin: 3em auto">
<h1>Sandbox bank</h1>
<p>Confirm the payment of <b>{amount}</b> minor units of {currency} ({charge}).</p>
<form method="post"><input type="hidden" name="result" value="approve">
<button type="submit">Approve</button></form>
<form method="post"><input type="hidden" name="result" value="deny">
<button type="submit">Deny</button></form>
</body></html>
"""


async def challenge_page(request: web.Request) -> web.Response:
    """The shopper's 3-D Secure challenge: approve or deny."""
    try:
        charge = request.app[STATE_KEY].charge(request.match_info["charge_id"])
    except Refusal as refusal:
        return web.Response(status=refusal.status, text=refusal.message)
    page = _CHALLENGE.format(amount=charge.amount, currency=charge.currency, charge=charge.id)
    return web.Response(text=page, content_type="text/html")


async def challenge_answer(request: web.Request) -> web.Response:
    """The shopper answered: the charge becomes final, and the shopper goes back
    to the merchant's return URL (303), as after a real challenge."""
    state = request.app[STATE_KEY]
    form = await request.post()
    try:
        charge = state.charge(request.match_info["charge_id"])
        approve = form.get("result") == "approve"
        books.settle_pending(state, charge, approve, "authentication_failed")
    except Refusal as refusal:
        return web.Response(status=refusal.status, text=refusal.message)
    if charge.return_url:
        joiner = "&" if "?" in charge.return_url else "?"
        raise web.HTTPSeeOther(f"{charge.return_url}{joiner}charge={charge.id}")
    return web.Response(text=f"{charge.id}: {charge.status}", content_type="text/plain")


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
    try:
        charge = request.app[STATE_KEY].charge(request.match_info["charge_id"])
    except Refusal as refusal:
        return _error(refusal.status, refusal.code, refusal.message)
    return _json(200, charge.view() | {"refunds": charge.refunds})


async def get_operation(request: web.Request) -> web.Response:
    if (fault := await _read_faults(request)) is not None:
        return fault
    stored = request.app[STATE_KEY].keys.get(request.match_info["key"])
    if stored is None:
        return _error(404, "no_such_operation", "no request was processed under this key")
    if not stored.done:
        return _error(409, "idempotency_in_progress", "still processing")
    return _json(200, {"http_status": stored.status, "response": orjson.loads(stored.body)})


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
        seconds = float(_data(await request.read()).get("seconds", 5))
    except (Refusal, TypeError, ValueError):
        return _error(400, "invalid_request", 'send {"seconds": N}')
    if not 0 < seconds <= 600:
        return _error(400, "invalid_request", "seconds must be in (0, 600]")
    request.app[SERVER_KEY].refuse_for(seconds)
    return _json(202, {"down_for_s": seconds})


async def settle_pending(request: web.Request) -> web.Response:
    """Play the shopper finishing 3-D Secure: a pending charge becomes final."""
    state = request.app[STATE_KEY]
    try:
        charge = state.charge(request.match_info["charge_id"])
        data = _data(await request.read())
        status, body = books.settle_pending(
            state, charge, bool(data.get("approve", True)), str(data.get("decline_code", "refused"))
        )
    except Refusal as refusal:
        return _error(refusal.status, refusal.code, refusal.message)
    return _json(status, body)


def create_sandbox_app(
    name: str,
    *,
    api_key: str | None = None,
    faults: list[FaultRule] | None = None,
    seed: int | None = None,
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024, middlewares=[_on_the_wire])
    app[STATE_KEY] = SandboxState(name=name, api_key=api_key, faults=FaultBook(faults, seed))
    app[FIRED_KEY] = set()
    app.router.add_post("/v1/charges", create_charge)
    app.router.add_post("/v1/charges/{charge_id}/capture", capture_charge)
    app.router.add_post("/v1/charges/{charge_id}/void", void_charge)
    app.router.add_post("/v1/charges/{charge_id}/refunds", refund_charge)
    app.router.add_post("/v1/charges/{charge_id}/cancel", cancel_charge)
    app.router.add_get("/3ds/{charge_id}", challenge_page)
    app.router.add_post("/3ds/{charge_id}", challenge_answer)
    app.router.add_get("/v1/charges/{charge_id}", get_charge)
    app.router.add_get("/v1/operations/{key}", get_operation)
    app.router.add_get("/health", health)
    app.router.add_get("/_sandbox/ledger", ledger)
    app.router.add_put("/_sandbox/faults", put_faults)
    app.router.add_post("/_sandbox/outage", outage)
    app.router.add_post("/_sandbox/charges/{charge_id}/settle", settle_pending)
    return app


#: a full collection that leaves fewer live objects than this (a few ms of
#: walking) is left to run again; above it, its survivors are frozen
FREEZE_FLOOR = 20_000


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if (
        phase == "stop"
        and info["generation"] == 2
        and len(gc.get_objects(generation=2)) > FREEZE_FLOOR
    ):
        gc.freeze()


def keep_books_out_of_the_collector() -> None:
    """For a sandbox process of its own (``payrouter sandbox``): its books
    only grow, and each of CPython's full collections walks every charge
    ever made.  After a few minutes of a benchmark that is a stall of 100 ms
    and more on whichever request it falls, and every latency measured
    through the sandbox would carry it as if the router had added it (the
    direct call's p99 grew from 19 to 118 ms over four rounds of 4 s).  What
    survives a full collection is live, so it is frozen out of the
    collector's reach, and the next full collection walks only what came
    since.  Not for a process the sandbox shares (tests): freezing there
    would keep their garbage cycles, which become garbage later, forever."""
    gc.collect()
    gc.freeze()
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


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
        # a handler still hanging in a timeout fault is cancelled at shutdown, not awaited
        self._runner = web.AppRunner(
            self.app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
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
