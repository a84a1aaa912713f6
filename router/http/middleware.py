"""The middleware every request passes, and the failure mapping inside it.

``observe``: request id, input limits, metrics and one access log line,
around :func:`answered`: every failure becomes problem+json -- a Problem as
itself, an unreachable store as 503 with Retry-After, anything unexpected as
a 500 whose details go to the log, never to the caller.  A client that went
away mid-request is counted as 499 (nginx's "client closed request"), not
as our error.  One middleware, not two: each layer aiohttp wraps around a
handler is one more step every payment runs.  ``problems`` is the mapping
alone, for an application that does not observe (the metrics listener).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from adapters.connector import WebhookRefused
from router.http import inputs
from router.http.keys import LIFECYCLE, METRICS, TRACING
from router.http.problems import problem_response
from router.problems import Problem, store_unavailable
from router.store.protocol import StoreUnavailable
from router.telemetry import logs, tracing

log = logging.getLogger(__name__)

#: the status a request gets in metrics and logs when its client left first
CLIENT_CLOSED_REQUEST = 499
access = logging.getLogger("payrouter.access")

#: tighter than aiohttp's own parser limits, so our refusals are problem+json
MAX_PATH = 4096
MAX_HEADER_VALUE = 4096
MAX_HEADERS = 64
#: metric labels come only from known names: any other method is "other", any
#: path no route knows is "unmatched", so no request can mint a series
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _limits(request: web.Request) -> Problem | None:
    if len(request.raw_path) > MAX_PATH:
        return Problem(414, "uri_too_long", f"the path is longer than {MAX_PATH} characters")
    if len(request.headers) > MAX_HEADERS or any(
        len(v) > MAX_HEADER_VALUE for v in request.headers.values()
    ):
        return Problem(
            431,
            "headers_too_large",
            f"at most {MAX_HEADERS} headers of at most {MAX_HEADER_VALUE} characters",
        )
    return None


@web.middleware
async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
    rid = logs.new_request_id(request.headers.get("X-Request-Id"))
    token = logs.request_id.set(rid)
    noted: dict[str, Any] = {"payment_id": request.match_info.get("payment_id")}
    noted_token = logs.access_fields.set(noted)
    started = time.monotonic()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in KNOWN_METHODS else "other"
    try:
        with request.app[TRACING].request(method, route, request.headers) as span:
            refused = _limits(request)
            response = problem_response(refused) if refused else await answered(request, handler)
            tracing.note(span, **{"http.response.status_code": response.status}, **noted)
            if response.status >= 500:
                tracing.failed(span, str(noted.get("problem") or response.status))
        response.headers["X-Request-Id"] = rid
        if LIFECYCLE in request.app and request.app[LIFECYCLE].draining:
            response.force_close()  # keep-alive clients reconnect to another instance
        elapsed = time.monotonic() - started
        metrics = request.app[METRICS]
        metrics.requests.labels(route, method, str(response.status)).inc()
        metrics.request_seconds.labels(route).observe(elapsed)
        if access.isEnabledFor(logging.INFO):  # nothing is built for a line not written
            access.info(
                "request",
                extra={
                    "fields": {
                        "method": method,
                        "route": route,
                        "status": response.status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "worker": logs.WORKER,
                        **{k: v for k, v in noted.items() if v is not None},
                    }
                },
            )
        return response
    finally:
        logs.access_fields.reset(noted_token)
        logs.request_id.reset(token)


@web.middleware
async def problems(request: web.Request, handler: Any) -> web.StreamResponse:
    return await answered(request, handler)


async def answered(request: web.Request, handler: Any) -> web.StreamResponse:
    """The handler's response, or the problem+json its failure becomes."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Problem as problem:
        return problem_response(problem)
    except inputs.ClientGone:
        log.info("client closed the connection before its request was read")
        return web.Response(status=CLIENT_CLOSED_REQUEST)  # counted; nobody reads it
    except WebhookRefused as refused:
        return problem_response(Problem(refused.status, refused.code, "webhook refused"))
    except StoreUnavailable as exc:
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        request.app[METRICS].store_errors.labels(type(exc).__name__).inc()
        return problem_response(store_unavailable())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }.get(exc.status, "http_error")
        allow = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return problem_response(Problem(exc.status, code, exc.reason, headers=allow))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(Problem(500, "internal_error", "an internal error occurred"))
