"""Stripe webhooks: ``Stripe-Signature`` (t=, v1=, 300 s tolerance), then the
event's object, found by the ids we put in its metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.base import AcquirerResult, Operation, ResultStatus
from adapters.connector import (
    AcquirerEvent,
    Target,
    WebhookAck,
    WebhookRefused,
    json_object,
    text,
)
from adapters.signing import verify_timestamped
from adapters.stripe.adapter import decline_from
from adapters.stripe.statuses import INTENT_EVENTS, STATUS_MAP


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _refund_event(event_id: str, obj: dict[str, Any], live: bool | None) -> list[AcquirerEvent]:
    refund_id = text(_dict(obj.get("metadata")).get("payrouter_refund_id"))
    mapped = STATUS_MAP[Operation.REFUND].get(str(obj.get("status")))
    if refund_id is None or mapped is None:
        return []
    result = AcquirerResult(
        mapped,
        acquirer_reference=text(obj.get("id")),
        decline=decline_from({"code": obj.get("failure_reason")})
        if mapped is ResultStatus.DECLINED
        else None,
    )
    intent = obj.get("payment_intent")
    return [
        AcquirerEvent(
            event_id,
            Target.REFUND,
            refund_id,
            Operation.REFUND,
            result,
            live,
            payment_reference=text(_dict(intent).get("id"))
            if isinstance(intent, dict)
            else text(intent),
        )
    ]


def _intent_event(
    event_id: str, kind: str, obj: dict[str, Any], live: bool | None
) -> list[AcquirerEvent]:
    payment_id = text(_dict(obj.get("metadata")).get("payrouter_payment_id"))
    if payment_id is None or kind not in INTENT_EVENTS:
        return []
    operation, status = INTENT_EVENTS[kind]
    captured = (str(obj.get("status")) == "succeeded") if status is ResultStatus.APPROVED else None
    result = AcquirerResult(
        status,
        acquirer_reference=text(obj.get("id")),
        decline=decline_from(_dict(obj.get("last_payment_error")))
        if status is ResultStatus.DECLINED
        else None,
        captured=captured,
    )
    return [
        AcquirerEvent(
            event_id,
            Target.PAYMENT,
            payment_id,
            operation,
            result,
            live,
            payment_reference=result.acquirer_reference,
        )
    ]


class StripeWebhooks:
    ack = WebhookAck()

    def read(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]
    ) -> list[AcquirerEvent]:
        verify_timestamped(headers.get("Stripe-Signature"), body, secrets)
        event = json_object(body)
        if not text(event.get("id")):
            raise WebhookRefused("webhook_invalid")
        event_id, kind = str(event["id"]), str(event.get("type", ""))
        live = event.get("livemode") if isinstance(event.get("livemode"), bool) else None
        obj = _dict(_dict(event.get("data")).get("object"))
        if obj.get("object") == "refund":
            return _refund_event(event_id, obj, live)
        if obj.get("object") == "payment_intent":
            return _intent_event(event_id, kind, obj, live)
        return []


WEBHOOKS = StripeWebhooks()
