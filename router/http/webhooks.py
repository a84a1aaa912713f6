"""``POST /webhooks/{acquirer}``: acquirers authenticate by signature, not by key."""

from __future__ import annotations

from aiohttp import web

from adapters.connector import WebhookAck, WebhookRefused
from adapters.registry import connector_for
from router.http.inputs import read_body
from router.http.payments import runtime
from router.problems import Problem
from router.webhooks import inbound


async def acquirer_webhook(request: web.Request) -> web.Response:
    rt = runtime(request)
    name = request.match_info["acquirer"]
    settings = rt.config.acquirers.get(name)
    label = name if settings is not None else "unknown"
    try:
        changed = await inbound.receive(
            rt, name, request.headers, await read_body(request, json_only=False)
        )
    except (Problem, WebhookRefused) as refused:
        rt.metrics.webhooks_in.labels(label, refused.code).inc()
        raise
    rt.metrics.webhooks_in.labels(label, "applied" if changed else "no_change").inc()
    assert settings is not None  # receive() refuses unknown acquirers
    webhooks = connector_for(settings).webhooks
    ack = webhooks.ack if webhooks is not None else WebhookAck()
    return web.Response(status=ack.status, body=ack.body, content_type=ack.content_type)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/{acquirer}", acquirer_webhook)
