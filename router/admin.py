"""Admin API (its own credential): acquirer state, drain/undrain, config reload."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from router.api import json_response
from router.auth import authenticate_admin
from router.keys import CONFIG_PATH, RELOADER, RUNTIME
from router.problems import Problem
from router.records import now_ms
from router.runtime import Runtime


def _admin_rt(request: web.Request) -> Runtime:
    rt = request.app[RUNTIME].current
    authenticate_admin(rt.config, request.headers.get("Authorization"))
    return rt


def acquirer_report(rt: Runtime) -> list[dict[str, Any]]:
    report = []
    for name, acq in rt.acquirers.items():
        health = acq.health
        report.append(
            {
                "name": name,
                "kind": acq.adapter.kind,
                "routable": acq.routable(),
                "drained": acq.drained,
                "healthy": health.healthy,
                "ejected": health.ejected(),
                "last_probe_error": health.last_probe_error,
                "breaker": acq.breaker.state,
                "breaker_failures": acq.breaker.fail_counter,
                "weight": acq.weight,
                "priority": acq.priority,
                "latency_ewma_ms": None
                if health.latency_ewma_ms is None
                else round(health.latency_ewma_ms, 2),
                "error_rate": round(health.error_ewma, 4),
                "requests": health.requests,
                "errors": health.errors,
                "test_mode": acq.test_mode,
            }
        )
    return report


async def list_acquirers(request: web.Request) -> web.Response:
    rt = _admin_rt(request)
    return json_response({"config_version": rt.version, "acquirers": acquirer_report(rt)})


async def _set_drain(request: web.Request, drained: bool) -> web.Response:
    rt = _admin_rt(request)
    name = request.match_info["name"]
    acquirer = rt.acquirers.get(name)
    if acquirer is None:
        raise Problem(404, "acquirer_not_found", f"no acquirer {name!r} in the current config")
    acquirer.drained = drained
    return json_response({"name": name, "drained": drained})


async def drain(request: web.Request) -> web.Response:
    return await _set_drain(request, True)


async def undrain(request: web.Request) -> web.Response:
    return await _set_drain(request, False)


async def reload(request: web.Request) -> web.Response:
    _admin_rt(request)
    if CONFIG_PATH not in request.app:
        raise Problem(409, "reload_unavailable", "this router was not started from a file")
    result = await request.app[RELOADER].reload("admin call")
    body = {
        "ok": result.ok,
        "version": result.version,
        "changed": result.changed,
        "error": result.error,
    }
    return json_response(body, 200 if result.ok else 422)


async def config_info(request: web.Request) -> web.Response:
    rt = _admin_rt(request)
    return json_response(
        {
            "version": rt.version,
            "history": request.app[RUNTIME].history,
            "path": request.app.get(CONFIG_PATH),
            "last_reload_error": request.app[RELOADER].last_error
            if RELOADER in request.app
            else None,
        }
    )


async def dead_letters(request: web.Request) -> web.Response:
    rt = _admin_rt(request)
    assert rt.publisher is not None
    items = await rt.publisher.outbox.dead_letters(500)
    return json_response(
        {
            "dead_letters": [
                {
                    "id": entry_id,
                    "event_id": d.event_id,
                    "type": d.event_type,
                    "subscriber": d.subscriber,
                    "attempts": d.attempt + 1,
                    "reason": reason,
                }
                for entry_id, d, reason in items
            ]
        }
    )


async def redeliver(request: web.Request) -> web.Response:
    """Body ``{"ids": [...]}`` redelivers those dead letters; no ids: all of them."""
    rt = _admin_rt(request)
    assert rt.publisher is not None
    raw = await request.read()
    try:
        ids = orjson.loads(raw).get("ids") if raw else None
    except (orjson.JSONDecodeError, AttributeError):
        raise Problem(400, "invalid_json", 'send {"ids": [...]} or nothing') from None
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise Problem(400, "invalid_request", "ids must be a list of dead-letter ids")
    moved = await rt.publisher.outbox.redeliver(ids, now_ms())
    return json_response({"redelivered": moved})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/acquirers", list_acquirers)
    app.router.add_post("/admin/acquirers/{name}/drain", drain)
    app.router.add_post("/admin/acquirers/{name}/undrain", undrain)
    app.router.add_post("/admin/config/reload", reload)
    app.router.add_get("/admin/config", config_info)
    app.router.add_get("/admin/webhooks/dead", dead_letters)
    app.router.add_post("/admin/webhooks/redeliver", redeliver)
