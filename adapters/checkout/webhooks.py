"""Checkout.com webhooks: ``Cko-Signature``, a hex HMAC-SHA256 of the raw body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from adapters.base import AcquirerResult
from adapters.checkout.declines import DECLINES
from adapters.checkout.statuses import EVENT_TYPES, D
from adapters.connector import (
    AcquirerEvent,
    Target,
    WebhookAck,
    WebhookRefused,
    json_object,
    text,
)
from adapters.declines import normalize
from adapters.signing import verify_hex_body


class CheckoutWebhooks:
    ack = WebhookAck()

    def read(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]
    ) -> list[AcquirerEvent]:
        verify_hex_body(headers.get("Cko-Signature"), body, secrets)
        event = json_object(body)
        if not text(event.get("id")):
            raise WebhookRefused("webhook_invalid")
        kind = str(event.get("type", ""))
        if kind not in EVENT_TYPES:
            return []
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        assert isinstance(data, dict)
        is_refund, operation, status = EVENT_TYPES[kind]
        payment_ref = text(data.get("id"))
        result = AcquirerResult(
            status,
            acquirer_reference=text(data.get("action_id")) or payment_ref,
            decline=normalize(text(data.get("response_code")), DECLINES) if status is D else None,
        )
        return [
            AcquirerEvent(
                str(event["id"]),
                Target.REFUND if is_refund else Target.PAYMENT,
                str(data.get("reference", "")),
                operation,
                result,
                payment_reference=payment_ref,
            )
        ]


WEBHOOKS = CheckoutWebhooks()
