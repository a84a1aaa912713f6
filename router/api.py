"""HTTP handlers: authenticate, parse, call the orchestrator, render.

No payment logic lives here; a handler is a few lines around a plain async
function that tests call directly.  The middleware turns every failure into
problem+json, so a caller never sees a stack trace.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any, TypeVar

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from router import logs, orchestrator
from router.auth import Principal, authenticate
from router.idempotency.flow import ApiResult
from router.idempotency.protocol import StoreUnavailable
from router.keys import METRICS, RUNTIME
from router.logs import new_request_id
from router.models import CapturePayment, CreatePayment, CreateRefund, VoidPayment
from router.openapi import openapi_document
from router.pan import json_contains_pan
from router.problems import Problem, store_unavailable
from router.runtime import Runtime
from router.webhooks import inbound

log = logging.getLogger(__name__)
access = logging.getLogger("payrouter.access")

M = TypeVar("M", bound=BaseModel)

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_ID = re.compile(r"^[a-z]{2,4}_[0-9a-f]{24}$")


#: tighter than aiohttp's own parser limits, so our refusals are problem+json
MAX_PATH = 1024
MAX_HEADER_VALUE = 4096
MAX_HEADERS = 64


@web.middleware
async def observe_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outermost: request id, input limits, metrics and one access log line."""
    rid = new_request_id(request.headers.get("X-Request-Id"))
    token = logs.request_id.set(rid)
    started = time.monotonic()
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    try:
        if len(request.raw_path) > MAX_PATH:
            response: web.StreamResponse = Problem(
                414, "uri_too_long", f"the path is longer than {MAX_PATH} characters"
            ).response()
        elif len(request.headers) > MAX_HEADERS or any(
            len(v) > MAX_HEADER_VALUE for v in request.headers.values()
        ):
            response = Problem(
                431,
                "headers_too_large",
                f"at most {MAX_HEADERS} headers of at most {MAX_HEADER_VALUE} characters",
            ).response()
        else:
            response = await handler(request)
        response.headers["X-Request-Id"] = rid
        elapsed = time.monotonic() - started
        metrics = request.app[METRICS]
        metrics.requests.labels(route_name, request.method, str(response.status)).inc()
        metrics.request_seconds.labels(route_name).observe(elapsed)
        if response.headers.get("Idempotent-Replayed") == "true":
            metrics.idempotency.labels("replayed").inc()
        access.info(
            "request",
            extra={
                "fields": {
                    "method": request.method,
                    "route": route_name,
                    "status": response.status,
                    "duration_ms": round(elapsed * 1000, 2),
                }
            },
        )
        return response
    finally:
        logs.request_id.reset(token)


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Problem as problem:
        if problem.code.startswith("idempotency_"):
            request.app[METRICS].idempotency.labels(problem.code).inc()
        return problem.response()
    except StoreUnavailable:
        log.warning("store unavailable on %s %s", request.method, request.path)
        return store_unavailable().response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }.get(exc.status, "http_error")
        return Problem(exc.status, code, exc.reason).response()
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return Problem(500, "internal_error", "an internal error occurred").response()


def _rt(request: web.Request) -> Runtime:
    """The runtime this request will use from start to end (reload-safe)."""
    return request.app[RUNTIME].current


def _principal(request: web.Request, scope: str) -> Principal:
    who = authenticate(_rt(request).config, request.headers.get("Authorization"))
    who.require(scope)
    return who


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise Problem(
            400, "idempotency_key_missing", "every mutating request needs an Idempotency-Key header"
        )
    if not _IDEMPOTENCY_KEY.match(key):
        raise Problem(
            400,
            "idempotency_key_invalid",
            "Idempotency-Key must be 1-255 printable ASCII characters",
        )
    return key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Problem(
                400,
                "duplicate_json_key",
                "a key appears twice in one JSON object; which one would count?",
                key=key[:64],
            )
        seen[key] = value
    return seen


def _no_constants(name: str) -> Any:
    raise Problem(400, "invalid_json", f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN or Infinity."""
    if not raw:
        return {}
    try:
        return json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except UnicodeDecodeError:
        raise Problem(400, "invalid_json", "the body is not UTF-8") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise Problem(400, "invalid_json", f"the body is not valid JSON: {detail}") from None


async def _body(request: web.Request, model: type[M]) -> M:
    data = parse_json(await request.read())
    if json_contains_pan(data):
        raise Problem(
            400,
            "raw_card_number_refused",
            "the request contains what looks like a card number; send a payment method "
            "token instead. The request was not stored or logged.",
        )
    if not isinstance(data, dict):
        raise Problem(400, "invalid_json", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "(body)",
                "message": err["msg"].removeprefix("Value error, "),
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise Problem(
            400, "invalid_request", f"{len(errors)} field(s) are invalid", errors=errors
        ) from None


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        raise Problem(404, f"{name.removesuffix('_id')}_not_found", "no such object")
    return value


def render(result: ApiResult) -> web.Response:
    headers = dict(result.headers)
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.Response(
        status=result.status,
        body=orjson.dumps(result.body),
        content_type=result.content_type,
        headers=headers,
    )


def json_response(data: BaseModel | dict[str, Any] | list[Any], status: int = 200) -> web.Response:
    body = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


# -------------------------------------------------------------------- handlers


async def create_payment(request: web.Request) -> web.Response:
    who, key = _principal(request, "payments:write"), _idempotency_key(request)
    body = await _body(request, CreatePayment)
    return render(
        await orchestrator.create_payment(_rt(request), who.tenant, key, body, live=who.live)
    )


async def capture_payment(request: web.Request) -> web.Response:
    caller, key = _principal(request, "payments:write").tenant, _idempotency_key(request)
    payment_id = _path_id(request, "payment_id")
    body = await _body(request, CapturePayment)
    return render(await orchestrator.capture_payment(_rt(request), caller, key, payment_id, body))


async def void_payment(request: web.Request) -> web.Response:
    caller, key = _principal(request, "payments:write").tenant, _idempotency_key(request)
    payment_id = _path_id(request, "payment_id")
    await _body(request, VoidPayment)
    return render(await orchestrator.void_payment(_rt(request), caller, key, payment_id))


async def refund_payment(request: web.Request) -> web.Response:
    caller, key = _principal(request, "refunds:write").tenant, _idempotency_key(request)
    payment_id = _path_id(request, "payment_id")
    body = await _body(request, CreateRefund)
    return render(await orchestrator.refund_payment(_rt(request), caller, key, payment_id, body))


async def get_payment(request: web.Request) -> web.Response:
    caller = _principal(request, "payments:read").tenant
    payment_id = _path_id(request, "payment_id")
    return json_response(await orchestrator.get_payment(_rt(request), caller, payment_id))


async def get_refund(request: web.Request) -> web.Response:
    caller = _principal(request, "payments:read").tenant
    refund_id = _path_id(request, "refund_id")
    return json_response(await orchestrator.get_refund(_rt(request), caller, refund_id))


async def acquirer_webhook(request: web.Request) -> web.Response:
    """Acquirers authenticate by signature, not by API key."""
    rt = _rt(request)
    name = request.match_info["acquirer"]
    try:
        changed = await inbound.receive(rt, name, dict(request.headers), await request.read())
    except Problem as problem:
        rt.metrics.webhooks_in.labels(name[:40], problem.code).inc()
        raise
    rt.metrics.webhooks_in.labels(name, "applied" if changed else "no_change").inc()
    if rt.config.acquirers[name].kind == "adyen":
        return web.Response(text="[accepted]")  # what Adyen expects back
    return json_response({"received": True, "changed": changed})


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests (pid: which worker answered)."""
    return json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: only with a reachable store may this instance take payments."""
    try:
        await _rt(request).store.ping()
    except StoreUnavailable:
        return json_response({"status": "unavailable", "store": "unreachable"}, 503)
    return json_response({"status": "ready", "store": "ok"})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/payments", create_payment)
    app.router.add_get("/v1/payments/{payment_id}", get_payment)
    app.router.add_post("/v1/payments/{payment_id}/capture", capture_payment)
    app.router.add_post("/v1/payments/{payment_id}/void", void_payment)
    app.router.add_post("/v1/payments/{payment_id}/refunds", refund_payment)
    app.router.add_get("/v1/refunds/{refund_id}", get_refund)
    app.router.add_post("/webhooks/{acquirer}", acquirer_webhook)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", readyz)
