"""Admin API (its own credential): acquirer state, drain/undrain, config reload."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from router.http import inputs, network
from router.http.auth import authenticate_admin
from router.http.keys import CONFIG_PATH, DELIVERIES, DRAIN, FLEET, RELOADER, RUNTIME
from router.http.payments import json_response
from router.ledger.drainer import GROUP as LEDGER_GROUP
from router.ledger.protocol import LedgerError
from router.ops.fleet import fleet_view
from router.payments.records import now_ms
from router.problems import Problem
from router.runtime import Runtime


def _admin_rt(request: web.Request) -> Runtime:
    rt = request.app[RUNTIME].current
    authenticate_admin(rt.config, request.headers.get("Authorization"))
    allowed = rt.config.admin.allow_from if rt.config.admin else None
    network.require_allowed(request, rt.config.server.trusted_proxies, allowed)
    inputs.refuse_pan_around(request)
    return rt


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


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
                "latency_ewma_ms": _round(health.latency_ms()),
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
        raise Problem(404, "acquirer_not_found", "no acquirer of that name in the current config")
    await rt.store.set_fleet_drain(name, drained)  # every worker obeys within fleet_poll_s
    acquirer.drained = drained  # this one at once
    return json_response({"name": name, "drained": drained, "scope": "fleet"})


async def drain(request: web.Request) -> web.Response:
    return await _set_drain(request, True)


async def undrain(request: web.Request) -> web.Response:
    return await _set_drain(request, False)


async def reload(request: web.Request) -> web.Response:
    """Reload here at once (the answer says how it went) and ask every other
    worker to, through the fleet state (``GET /admin/fleet`` shows who did)."""
    rt = _admin_rt(request)
    if CONFIG_PATH not in request.app:
        raise Problem(409, "reload_unavailable", "this router was not started from a file")
    member = request.app[FLEET]
    member.generation = await rt.store.request_fleet_reload()
    result = await request.app[RELOADER].reload("admin call")
    body = {
        "ok": result.ok,
        "version": result.version,
        "changed": result.changed,
        "error": result.error,
        "generation": member.generation,
    }
    return json_response(body, 200 if result.ok else 422)


async def fleet(request: web.Request) -> web.Response:
    """The operator state every instance obeys, and what each worker applied."""
    rt = _admin_rt(request)
    return json_response(await fleet_view(rt, request.app[FLEET]))


async def config_info(request: web.Request) -> web.Response:
    rt = _admin_rt(request)
    return json_response(
        {
            "version": rt.version,
            "history": request.app[RUNTIME].history,
            "path": request.app.get(CONFIG_PATH, None),
            "last_reload_error": request.app[RELOADER].last_error
            if RELOADER in request.app
            else None,
        }
    )


async def ledger_status(request: web.Request) -> web.Response:
    """The system of record: reachable or not, and how far the drain lags."""
    rt = _admin_rt(request)
    if rt.ledger is None or rt.config.ledger is None:
        return json_response({"configured": False})
    try:
        await rt.ledger.ping()
        database = "ok"
    except LedgerError as exc:
        database = f"unreachable: {exc}"
    drain = request.app[DRAIN]
    return json_response(
        {
            "configured": True,
            "kind": rt.config.ledger.kind,
            "drain": rt.config.ledger.drain,
            "database": database,
            "backlog": await rt.outbox.backlog(LEDGER_GROUP),
            "drained": drain.drained,
            "last_drained_at": drain.last_drained_at,
            "last_error": drain.last_error,
            "failing_since": drain.failing_since,
        }
    )


async def dead_letters(request: web.Request) -> web.Response:
    _admin_rt(request)
    items = await request.app[DELIVERIES].dead_letters(500)
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
    _admin_rt(request)
    wanted = await inputs.body(request, Redeliver)
    moved = await request.app[DELIVERIES].redeliver(wanted.ids, now_ms())
    return json_response({"redelivered": moved})


class Redeliver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=1000)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/acquirers", list_acquirers)
    app.router.add_post("/admin/acquirers/{name}/drain", drain)
    app.router.add_post("/admin/acquirers/{name}/undrain", undrain)
    app.router.add_post("/admin/config/reload", reload)
    app.router.add_get("/admin/config", config_info)
    app.router.add_get("/admin/fleet", fleet)
    app.router.add_get("/admin/webhooks/dead", dead_letters)
    app.router.add_get("/admin/ledger", ledger_status)
    app.router.add_post("/admin/webhooks/redeliver", redeliver)
