"""HTTP handlers of the payment API: authenticate, parse, call, render.

No payment logic lives here; a handler is a few lines around a plain async
function of :mod:`router.payments` that tests call directly.
"""

from __future__ import annotations

import orjson
from aiohttp import web
from pydantic import BaseModel

from router.http import inputs, network
from router.http.auth import Principal, authenticate
from router.http.keys import METRICS, RUNTIME
from router.payments import authentication, create, follow_on, lookups, methods, reads, refunds
from router.payments.context import ApiResult, Call, Deadline
from router.payments.models import (
    AuthenticatePayment,
    CapturePayment,
    CreatePayment,
    CreateRefund,
    ListPayments,
    VoidPayment,
)
from router.runtime import Runtime
from router.telemetry import logs


def runtime(request: web.Request) -> Runtime:
    """The runtime this request will use from start to end (reload-safe)."""
    return request.app[RUNTIME].current


def principal(request: web.Request, scope: str) -> Principal:
    """Who calls, checked in the order that leaks least: the key, the scope,
    the address it may be used from, then what the request carries around
    its body."""
    config = runtime(request).config
    who = authenticate(config, request.headers.get("Authorization"))
    who.require(scope)
    allowed = config.callers[who.caller.name].allow_from
    network.require_allowed(request, config.server.trusted_proxies, allowed)
    inputs.refuse_pan_around(request)
    return who


def _call(request: web.Request, scope: str) -> Call:
    rt = runtime(request)
    who = principal(request, scope)
    key = inputs.idempotency_key(request)
    return Call(rt, who.caller, key, Deadline(rt.config.payments.deadline_s))


def render(request: web.Request, result: ApiResult) -> web.Response:
    headers = dict(result.headers)
    metrics = request.app[METRICS]
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
        metrics.idempotency.labels("replayed").inc()
    code = result.body.get("code")
    if isinstance(code, str) and code.startswith("idempotency_"):
        metrics.idempotency.labels(code).inc()
    _note(result)
    return web.Response(
        status=result.status,
        body=orjson.dumps(result.body),
        content_type=result.content_type,
        headers=headers,
    )


def _note(result: ApiResult) -> None:
    """What the access line says about this answer."""
    body = result.body
    found = body.get("payment_id") or body.get("id")
    logs.note(
        payment_id=found if isinstance(found, str) and found.startswith("pay_") else None,
        refund_id=body.get("id") if body.get("payment_id") else None,
        acquirer=body.get("acquirer"),
        problem=body.get("code") if isinstance(body.get("code"), str) else None,
        replayed=result.replayed,
    )


def json_response(
    data: BaseModel | dict[str, object] | list[object], status: int = 200
) -> web.Response:
    body = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def create_payment(request: web.Request) -> web.Response:
    call = _call(request, "payments:write")
    kinds = {name: acquirer.kind for name, acquirer in call.rt.acquirers.items()}
    numeric = methods.numeric_token_keys(kinds)
    body = await inputs.body(request, CreatePayment, lambda data: methods.pan_exempt(data, numeric))
    return render(request, await create.create_payment(call, body))


async def capture_payment(request: web.Request) -> web.Response:
    call = _call(request, "payments:write")
    payment_id = inputs.path_id(request, "payment_id")
    body = await inputs.body(request, CapturePayment)
    return render(request, await follow_on.capture_payment(call, payment_id, body.amount))


async def void_payment(request: web.Request) -> web.Response:
    call = _call(request, "payments:write")
    payment_id = inputs.path_id(request, "payment_id")
    await inputs.body(request, VoidPayment)
    return render(request, await follow_on.void_payment(call, payment_id))


async def refund_payment(request: web.Request) -> web.Response:
    call = _call(request, "refunds:write")
    payment_id = inputs.path_id(request, "payment_id")
    body = await inputs.body(request, CreateRefund)
    return render(request, await refunds.refund_payment(call, payment_id, body))


async def authenticate_payment(request: web.Request) -> web.Response:
    who = principal(request, "payments:write")
    payment_id = inputs.path_id(request, "payment_id")
    body = await inputs.body(request, AuthenticatePayment)
    status, view = await authentication.authenticate_payment(
        runtime(request), who.caller.tenant, payment_id, body.details
    )
    return json_response(view, status)


async def get_payment(request: web.Request) -> web.Response:
    who = principal(request, "payments:read")
    payment_id = inputs.path_id(request, "payment_id")
    return json_response(await reads.get_payment(runtime(request), who.caller.tenant, payment_id))


async def list_payments(request: web.Request) -> web.Response:
    who = principal(request, "payments:read")
    wanted = inputs.query(request, ListPayments, lists=frozenset({"status"}))
    return json_response(await lookups.list_payments(runtime(request), who.caller.tenant, wanted))


async def payment_events(request: web.Request) -> web.Response:
    who = principal(request, "payments:read")
    payment_id = inputs.path_id(request, "payment_id")
    rt = runtime(request)
    return json_response(await lookups.payment_events(rt, who.caller.tenant, payment_id))


async def get_refund(request: web.Request) -> web.Response:
    who = principal(request, "payments:read")
    refund_id = inputs.path_id(request, "refund_id")
    return json_response(await reads.get_refund(runtime(request), who.caller.tenant, refund_id))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/payments", create_payment)
    app.router.add_get("/v1/payments", list_payments)
    app.router.add_get("/v1/payments/{payment_id}", get_payment)
    app.router.add_get("/v1/payments/{payment_id}/events", payment_events)
    app.router.add_post("/v1/payments/{payment_id}/capture", capture_payment)
    app.router.add_post("/v1/payments/{payment_id}/void", void_payment)
    app.router.add_post("/v1/payments/{payment_id}/authenticate", authenticate_payment)
    app.router.add_post("/v1/payments/{payment_id}/refunds", refund_payment)
    app.router.add_get("/v1/refunds/{refund_id}", get_refund)
