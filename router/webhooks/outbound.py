"""Outbound webhooks to internal subscribers: signed, at least once.

Every state change of a payment or refund is an outbox entry written in the
same step as the change (see :mod:`router.store.protocol`).  The fan-out
reads the outbox as consumer group ``webhooks`` and turns each state change
into one queued delivery per subscriber whose globs match (the event id is
derived from the record id and version, so a change read twice keeps its id
for the receiver's dedupe), then acknowledges the entry.  The delivery loop
signs each POST (``Payrouter-Signature: t=<unix>,v1=<hex>`` over
``"<t>.<body>"``), retries with exponential backoff and full jitter, and
dead-letters what is still failing after the retry window.

Both loops survive their errors: a failure is logged and counted, the loop
waits and goes on; a store that came back empty has its groups created again.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import orjson

from adapters.signing import sign_timestamped
from router.config import WebhooksConfig
from router.payments.models import payment_body, refund_body
from router.payments.records import PaymentRecord, RefundRecord, now_ms
from router.runtime import Runtime
from router.store.keys import DocKind
from router.store.protocol import OutboxEntry
from router.telemetry.metrics import Metrics
from router.webhooks.queue import Delivery, DeliveryQueue

log = logging.getLogger(__name__)

GROUP = "webhooks"


def event_id(kind: str, record_id: str, version: int) -> str:
    digest = hashlib.sha256(f"{kind}:{record_id}:{version}".encode()).hexdigest()[:24]
    return f"evt_{digest}"


def deliveries_for(config: WebhooksConfig, entry: OutboxEntry) -> list[Delivery]:
    """One delivery per interested subscriber, for a change of state only."""
    event = entry.event
    if event.previous_state is None or event.previous_state == event.state:
        return []
    kind = f"{event.kind}.{event.state}"
    targets = [
        name
        for name, sub in config.subscribers.items()
        if any(fnmatch.fnmatchcase(kind, pattern) for pattern in sub.events)
    ]
    if not targets:
        return []
    data: dict[str, Any]
    if event.kind is DocKind.PAYMENT:
        data = payment_body(PaymentRecord.model_validate_json(entry.record))
    else:
        data = refund_body(RefundRecord.model_validate_json(entry.record))
    ident = event_id(kind, event.record_id, event.version)
    body = orjson.dumps(
        {"id": ident, "type": kind, "created": event.at_ms // 1000, "data": data}
    ).decode()
    return [Delivery(ident, kind, name, body, attempt=0, first_ms=now_ms()) for name in targets]


async def fan_out_once(
    rt: Runtime, queue: DeliveryQueue, consumer: str, *, claim: bool = True
) -> int:
    """Read outbox entries, queue their deliveries, acknowledge them.
    ``claim``: also take over entries another consumer left unacknowledged
    (one command per shard, so the loop does it now and then, not every turn)."""
    config = rt.config.webhooks
    idle_ms = int(config.claim_idle_s * 1000)
    entries = await rt.outbox.claim_stale(GROUP, consumer, idle_ms, 100) if claim else []
    entries += await rt.outbox.read(GROUP, consumer, 100, 100)
    deliveries = [d for entry in entries for d in deliveries_for(config, entry)]
    if deliveries:
        await queue.enqueue(deliveries)
    if entries:
        await rt.outbox.ack(GROUP, entries)
    return len(entries)


def backoff_s(config: WebhooksConfig, attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
    return rng.uniform(0, min(config.backoff_max_s, config.backoff_base_s * 2**attempt))


async def deliver(
    session: aiohttp.ClientSession,
    config: WebhooksConfig,
    queue: DeliveryQueue,
    entry_id: str,
    delivery: Delivery,
    rng: random.Random,
    metrics: Metrics | None = None,
) -> bool:
    """One attempt; the outcome decides ack, retry or dead letter."""
    subscriber = config.subscribers.get(delivery.subscriber)
    if subscriber is None:
        await queue.bury(entry_id, delivery, "subscriber no longer configured")
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
        await queue.ack(entry_id)
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
        await queue.bury(entry_id, delivery, f"retry window exhausted; last: {reason}")
        _count(metrics, delivery, "dead_lettered")
        return False
    due = now + int(backoff_s(config, delivery.attempt, rng) * 1000)
    await queue.schedule_retry(entry_id, replace(delivery, attempt=delivery.attempt + 1), due)
    _count(metrics, delivery, "retry_scheduled")
    return False


def _count(metrics: Metrics | None, delivery: Delivery, result: str) -> None:
    if metrics is not None:
        metrics.webhooks_out.labels(delivery.subscriber, result).inc()


async def deliver_once(
    rt: Runtime,
    queue: DeliveryQueue,
    session: aiohttp.ClientSession,
    consumer: str,
    rng: random.Random,
) -> int:
    config = rt.config.webhooks
    await queue.release_due(now_ms(), 100)
    batch = await queue.claim_stale(consumer, int(config.claim_idle_s * 1000), 20)
    batch += await queue.fetch(consumer, 20, 100)
    await asyncio.gather(
        *(
            deliver(session, config, queue, entry_id, delivery, rng, rt.metrics)
            for entry_id, delivery in batch
        )
    )
    return len(batch)


async def webhook_loop(
    current: Callable[[], Runtime],
    queue: DeliveryQueue,
    session: aiohttp.ClientSession,
    consumer: str,
) -> None:
    """Fan out, then deliver, forever; an error is logged and counted, never
    fatal.  With no subscriber configured the outbox is not read at all (the
    trim does not wait for this group then: router.ops.maintenance); what is
    still queued is delivered or, its subscriber gone, buried."""
    rng = random.Random()
    claimed_at = 0.0
    while True:
        rt = current()
        subscribed = bool(rt.config.webhooks.subscribers)
        now = time.monotonic()
        claim = now - claimed_at >= max(1.0, rt.config.webhooks.claim_idle_s / 2)
        try:
            if claim:
                claimed_at = now
            moved = await fan_out_once(rt, queue, consumer, claim=claim) if subscribed else 0
            sent = await deliver_once(rt, queue, session, consumer, rng)
        except Exception as exc:
            rt.metrics.background_errors.labels("webhooks").inc()
            log.warning("webhook loop: %s; retrying", exc)
            await asyncio.sleep(1.0)
            continue
        if not moved and not sent:
            await asyncio.sleep(0.05 if subscribed else 0.5)
