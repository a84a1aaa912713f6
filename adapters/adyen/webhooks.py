"""Adyen standard webhooks: a batch of NotificationRequestItems, each signed
with HMAC-SHA256 (hex-decoded key) over its colon-joined fields, base64, in
``additionalData.hmacSignature``.  Every item must verify, or the whole batch
is refused; Adyen expects the literal ``[accepted]`` back."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.adyen.declines import DECLINES
from adapters.adyen.statuses import EVENT_CODES, A, D
from adapters.base import AcquirerResult
from adapters.connector import (
    AcquirerEvent,
    SignatureInvalid,
    Target,
    WebhookAck,
    WebhookRefused,
    json_object,
)
from adapters.declines import normalize
from adapters.signing import same

ADYEN_FIELDS = ("pspReference", "originalReference", "merchantAccountCode", "merchantReference")


def signing_string(item: Mapping[str, Any]) -> str:
    amount = item.get("amount")
    amount = amount if isinstance(amount, dict) else {}
    values = [str(item.get(f) or "") for f in ADYEN_FIELDS] + [
        str(amount.get("value", "")),
        str(amount.get("currency", "")),
        str(item.get("eventCode") or ""),
        str(item.get("success") or ""),
    ]
    return ":".join(values)


def item_hmac(item: Mapping[str, Any], hex_key: str) -> str:
    """Raises ValueError for a key that is not hex (settings refuse such keys)."""
    key = binascii.unhexlify(hex_key)
    digest = hmac.new(key, signing_string(item).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_item(item: Mapping[str, Any], hex_keys: Sequence[str]) -> None:
    extra = item.get("additionalData")
    given = extra.get("hmacSignature") if isinstance(extra, dict) else None
    if not isinstance(given, str) or not given:
        raise SignatureInvalid("signature_missing")
    if not any(same(item_hmac(item, key), given) for key in hex_keys):
        raise SignatureInvalid("signature_mismatch")


def _items(body: bytes) -> tuple[list[dict[str, Any]], bool | None]:
    notification = json_object(body)
    entries = notification.get("notificationItems")
    if not isinstance(entries, list) or not entries:
        raise WebhookRefused("webhook_invalid")
    items = [e.get("NotificationRequestItem") if isinstance(e, dict) else None for e in entries]
    if not all(isinstance(item, dict) for item in items):
        raise WebhookRefused("webhook_invalid")
    live = notification.get("live")
    return [i for i in items if isinstance(i, dict)], (
        str(live).lower() == "true" if live is not None else None
    )


def _event(item: dict[str, Any], live: bool | None) -> AcquirerEvent | None:
    code = str(item.get("eventCode", ""))
    if code not in EVENT_CODES:
        return None
    is_refund, operation, fixed = EVENT_CODES[code]
    success = str(item.get("success", "")).lower() == "true"
    status = fixed or (A if success else D)
    own = str(item.get("pspReference") or "") or None
    result = AcquirerResult(
        status,
        acquirer_reference=own,
        decline=normalize(str(item.get("reason") or "Refused").split(":")[0], DECLINES)
        if status is D
        else None,
    )
    return AcquirerEvent(
        f"{own}:{code}:{item.get('success')}",
        Target.REFUND if is_refund else Target.PAYMENT,
        str(item.get("merchantReference", "")),
        operation,
        result,
        live,
        # a modification names the payment it modifies; an authorisation is the payment
        payment_reference=str(item.get("originalReference") or "") or own,
    )


class AdyenWebhooks:
    ack = WebhookAck(200, "text/plain", b"[accepted]")

    def read(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]
    ) -> list[AcquirerEvent]:
        items, live = _items(body)
        for item in items:  # every item is checked before any is trusted
            verify_item(item, secrets)
        return [e for e in (_event(item, live) for item in items) if e is not None]


WEBHOOKS = AdyenWebhooks()
