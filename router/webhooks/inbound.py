"""Inbound acquirer webhooks: verify, parse into events, dedupe, apply.

Every event is applied through the same idempotent functions as live answers,
replays and the reconciler, so an event that arrives twice, late, or before
the live answer leaves the records as one arrival would.  The event id is
remembered only after it was applied: a failure half-way leaves the
acquirer's redelivery free to try again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from adapters import stripe as stripe_adapter
from adapters.base import AcquirerResult, Operation, ResultStatus
from router import outcomes
from router.config import AcquirerConfig
from router.orchestrator import settle_refund
from router.problems import Problem
from router.runtime import Runtime
from router.webhooks.signatures import (
    SignatureError,
    verify_adyen_item,
    verify_checkout,
    verify_timestamped,
)

log = logging.getLogger(__name__)

A, D, P = ResultStatus.APPROVED, ResultStatus.DECLINED, ResultStatus.PENDING


@dataclass(frozen=True)
class AcquirerEvent:
    event_id: str
    refund: bool  # target is a refund (ident = refund id), else a payment
    ident: str
    #: None: the create, or the capture/void that holds the payment's lock
    operation: Operation | None
    result: AcquirerResult


# ------------------------------------------------------------------ parsers


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "webhook_invalid_json", "the webhook body is not JSON") from exc


def parse_stripe(body: bytes) -> list[AcquirerEvent]:
    event = _json(body)
    obj = ((event.get("data") or {}).get("object")) or {}
    kind, event_id = str(event.get("type", "")), str(event.get("id", ""))
    metadata = obj.get("metadata") or {}
    if obj.get("object") == "refund" and metadata.get("payrouter_refund_id"):
        mapped = stripe_adapter.STATUS_MAP[Operation.REFUND].get(str(obj.get("status")))
        if mapped is None:
            return []
        return [
            AcquirerEvent(
                event_id,
                True,
                metadata["payrouter_refund_id"],
                Operation.REFUND,
                AcquirerResult(mapped, acquirer_reference=obj.get("id")),
            )
        ]
    if obj.get("object") != "payment_intent" or not metadata.get("payrouter_payment_id"):
        return []
    error = obj.get("last_payment_error") or {}
    by_type: dict[str, tuple[Operation | None, ResultStatus]] = {
        "payment_intent.amount_capturable_updated": (Operation.AUTHORIZE, A),
        "payment_intent.succeeded": (None, A),
        "payment_intent.payment_failed": (Operation.AUTHORIZE, D),
        "payment_intent.canceled": (Operation.VOID, A),
        "payment_intent.processing": (Operation.AUTHORIZE, P),
        "payment_intent.requires_action": (Operation.AUTHORIZE, P),
    }
    if kind not in by_type:
        return []
    operation, status = by_type[kind]
    return [
        AcquirerEvent(
            event_id,
            False,
            metadata["payrouter_payment_id"],
            operation,
            AcquirerResult(
                status,
                acquirer_reference=obj.get("id"),
                decline_code=(error.get("decline_code") or error.get("code") or "card_declined")
                if status is D
                else None,
            ),
        )
    ]


_ADYEN_CODES: dict[str, tuple[bool, Operation | None, ResultStatus | None]] = {
    "AUTHORISATION": (False, Operation.AUTHORIZE, None),  # None: success decides
    "CAPTURE": (False, Operation.CAPTURE, None),
    "CAPTURE_FAILED": (False, Operation.CAPTURE, D),
    "CANCELLATION": (False, Operation.VOID, None),
    "REFUND": (True, Operation.REFUND, None),
    "REFUND_FAILED": (True, Operation.REFUND, D),
}


def parse_adyen(body: bytes, hmac_key: str) -> list[AcquirerEvent]:
    """Every item must carry a valid HMAC, or the whole batch is refused."""
    notification = _json(body)
    items = [
        (entry or {}).get("NotificationRequestItem") or {}
        for entry in (notification.get("notificationItems") or [])
    ]
    if not items:
        raise Problem(400, "webhook_invalid", "no notification items")
    events = []
    for item in items:
        verify_adyen_item(item, hmac_key)
        code = str(item.get("eventCode", ""))
        if code not in _ADYEN_CODES:
            continue
        is_refund, operation, fixed = _ADYEN_CODES[code]
        success = str(item.get("success", "")).lower() == "true"
        status = fixed or (A if success else D)
        events.append(
            AcquirerEvent(
                f"{item.get('pspReference')}:{code}:{item.get('success')}",
                is_refund,
                str(item.get("merchantReference", "")),
                operation,
                AcquirerResult(
                    status,
                    acquirer_reference=item.get("originalReference") or item.get("pspReference"),
                    decline_code=str(item.get("reason") or "refused") if status is D else None,
                ),
            )
        )
    return events


_CHECKOUT_TYPES: dict[str, tuple[bool, Operation, ResultStatus]] = {
    "payment_approved": (False, Operation.AUTHORIZE, A),
    "payment_pending": (False, Operation.AUTHORIZE, P),
    "payment_declined": (False, Operation.AUTHORIZE, D),
    "payment_captured": (False, Operation.CAPTURE, A),
    "payment_capture_declined": (False, Operation.CAPTURE, D),
    "payment_voided": (False, Operation.VOID, A),
    "payment_void_declined": (False, Operation.VOID, D),
    "payment_refunded": (True, Operation.REFUND, A),
    "payment_refund_declined": (True, Operation.REFUND, D),
}


def parse_checkout(body: bytes) -> list[AcquirerEvent]:
    event = _json(body)
    kind = str(event.get("type", ""))
    if kind not in _CHECKOUT_TYPES:
        return []
    data = event.get("data") or {}
    is_refund, operation, status = _CHECKOUT_TYPES[kind]
    return [
        AcquirerEvent(
            str(event.get("id", "")),
            is_refund,
            str(data.get("reference", "")),
            operation,
            AcquirerResult(
                status,
                acquirer_reference=data.get("id"),
                decline_code=str(data.get("response_code") or "declined") if status is D else None,
            ),
        )
    ]


def verify_and_parse(
    acq: AcquirerConfig, headers: dict[str, str], body: bytes
) -> list[AcquirerEvent]:
    if acq.webhook_secret is None:
        raise Problem(404, "webhooks_not_configured", "this acquirer has no webhook secret")
    secret = acq.webhook_secret.get()
    try:
        if acq.kind == "stripe":
            verify_timestamped(headers.get("Stripe-Signature"), body, secret)
            return parse_stripe(body)
        if acq.kind == "adyen":
            return parse_adyen(body, secret)
        if acq.kind == "checkout":
            verify_checkout(headers.get("Cko-Signature"), body, secret)
            return parse_checkout(body)
    except SignatureError as exc:
        raise Problem(401, "webhook_signature_invalid", f"webhook refused: {exc}") from exc
    raise Problem(404, "webhooks_not_supported", f"{acq.kind} acquirers send no webhooks")


# ------------------------------------------------------------------- apply


async def apply_event(rt: Runtime, acquirer: str, event: AcquirerEvent) -> bool:
    """True when the event changed a record."""
    if event.refund:
        refund = await rt.store.get_refund(event.ident)
        if refund is None or refund.acquirer != acquirer:
            return False
        settled = await settle_refund(rt, event.ident, event.result)
        return settled.version != refund.version
    payment = await rt.store.get_payment(event.ident)
    if payment is None or payment.acquirer not in (None, acquirer):
        return False
    operation = event.operation
    lock = payment.op_lock
    if operation is None:
        held = lock is not None and lock.operation == Operation.CAPTURE
        operation = Operation.CAPTURE if held else Operation.AUTHORIZE
    if operation in (Operation.AUTHORIZE, Operation.SALE):
        key = payment.acquirer_key or ""
        updated = await rt.update_payment(
            payment.id,
            lambda p: outcomes.apply_create(p, acquirer, key, event.result),
        )
    elif lock is not None and lock.operation == operation:
        updated = await rt.update_payment(
            payment.id,
            lambda p: outcomes.apply_locked_operation(p, lock, event.result),
        )
    else:
        return False
    if updated.state not in outcomes.UNRESOLVED and updated.op_lock is None:
        await rt.store.clear_unresolved(f"payment:{payment.id}")
    return updated.version != payment.version


async def receive(rt: Runtime, acquirer: str, headers: dict[str, str], body: bytes) -> int:
    """Verify, dedupe and apply one delivery; returns how many events changed state."""
    acq = rt.config.acquirers.get(acquirer)
    if acq is None:
        raise Problem(404, "acquirer_not_found", f"no acquirer {acquirer!r}")
    changed = 0
    for event in verify_and_parse(acq, headers, body):
        if await rt.store.event_seen(acquirer, event.event_id):
            log.info("webhook event %s from %s already applied", event.event_id, acquirer)
            continue
        changed += await apply_event(rt, acquirer, event)
        await rt.store.remember_event(acquirer, event.event_id)
    return changed
