"""HMAC signature schemes shared by several webhook senders (and by our own
outbound webhooks), verified in constant time.

Every comparison is on bytes: a header with non-ASCII characters is a forged
signature, not a crash (``hmac.compare_digest`` refuses non-ASCII ``str``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

from adapters.connector import SignatureInvalid

DEFAULT_TOLERANCE_S = 300


def hex_hmac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def same(expected: str, given: str) -> bool:
    """Constant-time equality that never raises, whatever the caller sent."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def sign_timestamped(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """``t=<unix>,v1=<hex>`` over ``"<t>.<body>"`` (Stripe's scheme; ours too)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={hex_hmac(secret.encode(), f'{t}.'.encode() + body)}"


def verify_timestamped(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Return the signed timestamp; raise SignatureInvalid otherwise.  Any of
    ``secrets`` may have signed (several are live while one is rotated)."""
    if not header:
        raise SignatureInvalid("signature_missing")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureInvalid("signature_malformed")
    signed = f"{timestamp}.".encode() + body
    expected = [hex_hmac(secret.encode(), signed) for secret in secrets]
    if not any(same(e, c) for e in expected for c in candidates):
        raise SignatureInvalid("signature_mismatch")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureInvalid("signature_stale")
    return timestamp


def verify_hex_body(header: str | None, body: bytes, secrets: Sequence[str]) -> None:
    """A hex HMAC-SHA256 of the raw body in one header (Checkout.com's scheme)."""
    if not header:
        raise SignatureInvalid("signature_missing")
    given = header.strip().lower()
    if not any(same(hex_hmac(secret.encode(), body), given) for secret in secrets):
        raise SignatureInvalid("signature_mismatch")
