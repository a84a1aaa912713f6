"""Outbound webhooks to internal subscribers: signed, at least once.

Every payment or refund state change becomes one event (its id derived from
the record id and version, so a republished change keeps its id for the
receiver's dedupe) and one queued delivery per subscriber whose globs match.
The delivery loop signs each POST (``Payrouter-Signature: t=<unix>,v1=<hex>``
over ``"<t>.<body>"``), retries with exponential backoff and full jitter, and
dead-letters what is still failing after the retry window.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import os
import random
import secrets
import socket
import time
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from router.background import background_ctx
from router.config import WebhooksConfig
from router.idempotency.protocol import StoreUnavailable
from router.metrics import Metrics
from router.models import PaymentView, RefundView
from router.records import PaymentRecord, RefundRecord, now_ms
from router.webhooks.outbox import Delivery, Outbox
from router.webhooks.signatures import sign_timestamped

log = logging.getLogger(__name__)


def event_id(kind: str, record_id: str, version: int) -> str:
    digest = hashlib.sha256(f"{kind}:{record_id}:{version}".encode()).hexdigest()[:24]
    return f"evt_{digest}"


class Publisher:
    def __init__(self, config: WebhooksConfig, outbox: Outbox) -> None:
        self.config = config
        self.outbox = outbox

    async def payment_changed(self, before: PaymentRecord, after: PaymentRecord) -> None:
        if before.state != after.state:
            await self._publish(
                f"payment.{after.state}",
                after.id,
                after.version,
                PaymentView.of(after).model_dump(mode="json"),
            )

    async def refund_changed(self, before: RefundRecord, after: RefundRecord) -> None:
        if before.state != after.state:
            await self._publish(
                f"refund.{after.state}",
                after.id,
                after.version,
                RefundView.of(after).model_dump(mode="json"),
            )

    async def _publish(self, kind: str, record_id: str, version: int, data: dict[str, Any]) -> None:
        targets = [
            name
            for name, sub in self.config.subscribers.items()
            if any(fnmatch.fnmatchcase(kind, pattern) for pattern in sub.events)
        ]
        if not targets:
            return
        ident = event_id(kind, record_id, version)
        body = orjson.dumps(
            {"id": ident, "type": kind, "created": int(time.time()), "data": data}
        ).decode()
        started = now_ms()
        try:
            await self.outbox.enqueue(
                [Delivery(ident, kind, name, body, attempt=0, first_ms=started) for name in targets]
            )
        except StoreUnavailable:
            # the state change is already stored; losing its notification is
            # logged rather than failing the payment call that caused it
            log.error("could not queue webhook %s (%s) for %s", ident, kind, targets)


def backoff_s(config: WebhooksConfig, attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
    return rng.uniform(0, min(config.backoff_max_s, config.backoff_base_s * 2**attempt))


async def deliver(
    session: aiohttp.ClientSession,
    config: WebhooksConfig,
    outbox: Outbox,
    entry_id: str,
    delivery: Delivery,
    rng: random.Random,
    metrics: Metrics | None = None,
) -> bool:
    """One attempt; the outcome decides ack, retry or dead letter."""
    subscriber = config.subscribers.get(delivery.subscriber)
    if subscriber is None:
        await outbox.bury(entry_id, delivery, "subscriber no longer configured")
        return False
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "Payrouter-Signature": sign_timestamped(subscriber.secret.get(), body),
        "Payrouter-Event-Id": delivery.event_id,
        "Payrouter-Event-Type": delivery.event_type,
        "Payrouter-Delivery-Attempt": str(delivery.attempt + 1),
    }
    try:
        async with session.post(
            subscriber.url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=config.timeout_s),
            allow_redirects=False,
        ) as resp:
            ok = 200 <= resp.status < 300
            reason = f"HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        ok, reason = False, type(exc).__name__
    if ok:
        await outbox.ack(entry_id)
        _count(metrics, delivery, "delivered")
        return True
    now = now_ms()
    if now - delivery.first_ms >= config.retry_window_s * 1000:
        log.warning(
            "webhook %s to %s dead-lettered after %d attempts (%s)",
            delivery.event_id,
            delivery.subscriber,
            delivery.attempt + 1,
            reason,
        )
        await outbox.bury(entry_id, delivery, f"retry window exhausted; last: {reason}")
        _count(metrics, delivery, "dead_lettered")
        return False
    due = now + int(backoff_s(config, delivery.attempt, rng) * 1000)
    await outbox.schedule_retry(entry_id, replace(delivery, attempt=delivery.attempt + 1), due)
    _count(metrics, delivery, "retry_scheduled")
    return False


def _count(metrics: Metrics | None, delivery: Delivery, result: str) -> None:
    if metrics is not None:
        metrics.webhooks_out.labels(delivery.subscriber, result).inc()


async def delivery_loop(app: web.Application) -> None:
    from router.keys import HTTP_SESSION, RUNTIME

    consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    rng = random.Random()
    while True:
        rt = app[RUNTIME].current
        publisher = rt.publisher
        if publisher is None or not publisher.config.subscribers:
            await asyncio.sleep(1.0)
            continue
        config, outbox = publisher.config, publisher.outbox
        try:
            await outbox.release_due(now_ms(), 100)
            batch = await outbox.claim_stale(consumer, int(config.claim_idle_s * 1000), 20)
            batch += await outbox.fetch(consumer, 20, 200)
            if not batch:
                await asyncio.sleep(0.05)
                continue
            await asyncio.gather(
                *(
                    deliver(app[HTTP_SESSION], config, outbox, entry_id, delivery, rng, rt.metrics)
                    for entry_id, delivery in batch
                )
            )
        except StoreUnavailable:
            log.warning("webhook delivery paused: store unavailable")
            await asyncio.sleep(1.0)


delivery_ctx = background_ctx("webhook-delivery", delivery_loop)
