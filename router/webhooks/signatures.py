"""Webhook signature schemes, verified in constant time.

* Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]``, HMAC-SHA256 of
  ``"<t>.<raw body>"`` with the endpoint secret; stale beyond the tolerance.
* Adyen: per notification item, HMAC-SHA256 with the hex-decoded key over
  ``pspReference:originalReference:merchantAccountCode:merchantReference:
  amount.value:amount.currency:eventCode:success`` (missing fields empty, no
  escaping), base64, in ``additionalData.hmacSignature``.
* Checkout.com: ``Cko-Signature``, hex HMAC-SHA256 of the raw body.
* Ours (outbound): the Stripe scheme, as ``Payrouter-Signature``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any

STRIPE_TOLERANCE_S = 300


class SignatureError(Exception):
    """Why a webhook was refused (a stable code)."""


def _hex_hmac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_timestamped(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """``t=<unix>,v1=<hex>`` over ``"<t>.<body>"`` (Stripe's scheme; ours too)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_hex_hmac(secret.encode(), f'{t}.'.encode() + body)}"


def verify_timestamped(
    header: str | None,
    body: bytes,
    secret: str,
    *,
    tolerance_s: int = STRIPE_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Return the signed timestamp; raise SignatureError otherwise."""
    if not header:
        raise SignatureError("signature_missing")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("signature_malformed")
    expected = _hex_hmac(secret.encode(), f"{timestamp}.".encode() + body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("signature_mismatch")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError("signature_stale")
    return timestamp


ADYEN_FIELDS = ("pspReference", "originalReference", "merchantAccountCode", "merchantReference")


def adyen_signing_string(item: dict[str, Any]) -> str:
    amount = item.get("amount") or {}
    values = [str(item.get(f) or "") for f in ADYEN_FIELDS] + [
        str(amount.get("value", "")),
        str(amount.get("currency", "")),
        str(item.get("eventCode") or ""),
        str(item.get("success") or ""),
    ]
    return ":".join(values)


def adyen_hmac(item: dict[str, Any], hex_key: str) -> str:
    try:
        key = binascii.unhexlify(hex_key)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("hmac_key_invalid") from exc
    digest = hmac.new(key, adyen_signing_string(item).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_adyen_item(item: dict[str, Any], hex_key: str) -> None:
    given = str((item.get("additionalData") or {}).get("hmacSignature") or "")
    if not given:
        raise SignatureError("signature_missing")
    if not hmac.compare_digest(adyen_hmac(item, hex_key), given):
        raise SignatureError("signature_mismatch")


def verify_checkout(header: str | None, body: bytes, secret: str) -> None:
    if not header:
        raise SignatureError("signature_missing")
    if not hmac.compare_digest(_hex_hmac(secret.encode(), body), header.strip().lower()):
        raise SignatureError("signature_mismatch")
