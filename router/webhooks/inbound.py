"""Inbound acquirer webhooks: the connector verifies and parses; here we
check the event may touch the record, dedupe it, and apply it.

An event may change only a record of its own mode (a test-mode acquirer's
event never moves a live payment) that has an attempt at that very acquirer
whose reference, when we know it, is the one the event names.  It is then
applied through the same idempotent functions as live answers, replays and
the reconciler, in one commit with its dedupe marker, so an event that
arrives twice, late, or before the live answer leaves the records as one
arrival would.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Mapping

from adapters.base import Operation
from adapters.connector import AcquirerEvent, Target
from adapters.registry import connector_for
from router.payments import outcomes
from router.payments.journal import Draft, payment_draft
from router.payments.records import Attempt, PaymentRecord, RefundRecord, Source
from router.payments.states import PaymentState
from router.problems import Problem
from router.runtime import Runtime

log = logging.getLogger(__name__)


def _digest(acquirer: str, event_id: str) -> str:
    return hashlib.sha256(f"{acquirer}\x1f{event_id}".encode()).hexdigest()[:40]


def _matches(attempt: Attempt | None, acquirer: str, reference: str | None) -> bool:
    """The record went to this acquirer, under this reference when we know it."""
    if attempt is None or attempt.acquirer != acquirer:
        return False
    return (
        reference is None
        or attempt.acquirer_reference is None
        or attempt.acquirer_reference == reference
    )


def _payment_attempt(payment: PaymentRecord, acquirer: str) -> Attempt | None:
    index = payment.last_attempt_at(acquirer)
    return None if index is None else payment.attempts[index]


def _apply_to_payment(payment: PaymentRecord, *, acquirer: str, event: AcquirerEvent) -> bool:
    """Route one event to the applier of the operation it settles."""
    operation = event.operation
    held = payment.open_operation()
    if operation is None:  # "succeeded": the create, or the capture that is running
        held_capture = held is not None and held.operation is Operation.CAPTURE
        operation = Operation.CAPTURE if held_capture else Operation.AUTHORIZE
    if operation.creates:
        if payment.state is PaymentState.CAPTURE_PENDING:
            return outcomes.apply_sale_capture(payment, event.result)
        found = payment.last_attempt_at(acquirer)
        if found is None:
            return False
        return outcomes.apply_create(payment, found, event.result)
    if operation is Operation.CAPTURE and payment.state is PaymentState.CAPTURE_PENDING:
        return outcomes.apply_sale_capture(payment, event.result)
    if held is not None and held.operation is operation:
        return outcomes.apply_operation(payment, held.id, event.result)
    return False


async def _apply_payment(rt: Runtime, acquirer: str, event: AcquirerEvent, seen: str) -> bool:
    payment = await rt.store.get_payment(event.reference)
    if payment is None or not _allowed(rt, payment, acquirer):
        return False
    attempt = _payment_attempt(payment, acquirer)
    if not _matches(attempt, acquirer, event.payment_reference):
        log.warning(
            "webhook event %s from %s does not match payment %s",
            event.event_id,
            acquirer,
            payment.id,
        )
        return False
    draft = payment_draft(rt, payment)
    before = payment.version
    draft.apply(functools.partial(_apply_to_payment, acquirer=acquirer, event=event))
    if not await draft.commit(Source.WEBHOOK, seen=seen):
        return False
    updated = draft.records[0]
    return updated.version != before


async def _apply_refund(rt: Runtime, acquirer: str, event: AcquirerEvent, seen: str) -> bool:
    refund = await rt.store.get_refund(event.reference)
    if refund is None or refund.acquirer != acquirer:
        return False
    payment = await rt.store.get_payment(refund.payment_id)
    if payment is None or not _allowed(rt, payment, acquirer):
        return False
    if not _matches(refund.attempt, acquirer, event.result.acquirer_reference):
        return False

    async def reread() -> list[RefundRecord | PaymentRecord | None]:
        return [await rt.store.get_refund(refund.id), await rt.store.get_payment(payment.id)]

    draft = Draft(rt, [refund, payment], reread)
    before = refund.version
    draft.apply(functools.partial(outcomes.apply_refund, result=event.result))
    if not await draft.commit(Source.WEBHOOK, seen=seen):
        return False
    return draft.records[0].version != before


def _allowed(rt: Runtime, payment: PaymentRecord, acquirer: str) -> bool:
    """Only an acquirer of the payment's own mode may move it."""
    known = rt.acquirers.get(acquirer)
    return known is not None and known.test_mode is not payment.livemode


async def apply_event(rt: Runtime, acquirer: str, event: AcquirerEvent) -> bool:
    """True when the event changed a record."""
    seen = _digest(acquirer, event.event_id)
    if event.target is Target.REFUND:
        return await _apply_refund(rt, acquirer, event, seen)
    return await _apply_payment(rt, acquirer, event, seen)


async def receive(rt: Runtime, acquirer: str, headers: Mapping[str, str], body: bytes) -> int:
    """Verify, dedupe and apply one delivery; returns how many events changed state."""
    settings = rt.config.acquirers.get(acquirer)
    webhooks = connector_for(settings).webhooks if settings else None
    if settings is None or webhooks is None or not settings.webhook_secrets:
        raise Problem(404, "webhooks_not_configured", "no webhooks are taken here")
    secrets = [s.get() for s in settings.webhook_secrets]
    events = webhooks.read(headers, body, secrets)
    changed = 0
    for event in events:
        changed += await apply_event(rt, acquirer, event)
    return changed
