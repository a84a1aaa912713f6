"""Operational endpoints: liveness, readiness, metrics and the API description."""

from __future__ import annotations

import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from router.http import middleware
from router.http.auth import authenticate_metrics
from router.http.keys import CONFIG, LIFECYCLE, LOOPS, METRICS
from router.http.openapi import openapi_document
from router.http.payments import json_response, runtime
from router.http.server import name_the_product
from router.store.protocol import StoreUnavailable


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def metrics(request: web.Request) -> web.Response:
    authenticate_metrics(request.app[CONFIG], request.headers.get("Authorization"))
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests (pid: which worker answered)."""
    return json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store answers and every background loop still runs."""
    if LIFECYCLE in request.app and request.app[LIFECYCLE].draining:
        return json_response({"status": "draining", "store": "unknown", "dead_loops": []}, 503)
    dead = request.app[LOOPS].dead() if LOOPS in request.app else []
    try:
        await runtime(request).store.ping()
    except StoreUnavailable:
        return json_response(
            {"status": "unavailable", "store": "unreachable", "dead_loops": dead}, 503
        )
    if dead:
        return json_response({"status": "unavailable", "store": "ok", "dead_loops": dead}, 503)
    return json_response({"status": "ready", "store": "ok", "dead_loops": []})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if app[CONFIG].server.metrics.port is None:
        app.router.add_get("/metrics", metrics)


def metrics_app(app: web.Application) -> web.Application:
    """``/metrics`` alone, for ``server.metrics.port``: scraped on a port the
    API's callers need not reach."""
    side = web.Application(middlewares=[middleware.problems])
    side[CONFIG] = app[CONFIG]
    side[METRICS] = app[METRICS]
    side.on_response_prepare.append(name_the_product)
    side.router.add_get("/metrics", metrics)
    return side
