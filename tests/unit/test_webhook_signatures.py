"""Webhook signatures: the acquirers' published vectors pass, forgeries fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from router.webhooks.signatures import (
    SignatureError,
    adyen_hmac,
    adyen_signing_string,
    sign_timestamped,
    verify_adyen_item,
    verify_checkout,
    verify_timestamped,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "specs" / "adyen-hmac-vectors"
VECTOR_KEY = "74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"


def _vectors() -> list[Path]:
    return sorted(VECTORS.glob("*.json")) if VECTORS.exists() else []


@pytest.mark.parametrize("path", _vectors(), ids=lambda p: p.stem)
def test_adyen_hmac_vectors_verify(path: Path) -> None:
    item: dict[str, Any] = json.loads(path.read_text())
    verify_adyen_item(item, VECTOR_KEY)


@pytest.mark.parametrize("path", _vectors(), ids=lambda p: p.stem)
def test_a_tampered_adyen_item_fails(path: Path) -> None:
    item: dict[str, Any] = json.loads(path.read_text())
    item["amount"]["value"] = int(item["amount"]["value"]) + 1
    with pytest.raises(SignatureError, match="signature_mismatch"):
        verify_adyen_item(item, VECTOR_KEY)


def test_the_documented_adyen_signing_string_vector() -> None:
    item = {
        "pspReference": "7914073381342284",
        "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704",
        "amount": {"value": 1130, "currency": "EUR"},
        "eventCode": "AUTHORISATION",
        "success": "true",
    }
    assert adyen_signing_string(item) == (
        "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    )
    key = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
    assert adyen_hmac(item, key) == "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="


def test_stripe_style_signatures_verify_with_any_of_several_v1() -> None:
    body = b'{"id": "evt_1"}'
    header = sign_timestamped("whsec", body, 1_700_000_000)
    assert verify_timestamped(header, body, "whsec", now=1_700_000_100) == 1_700_000_000
    rotated = header.replace("v1=", "v1=deadbeef,v1=")
    assert verify_timestamped(rotated, body, "whsec", now=1_700_000_100) == 1_700_000_000


@pytest.mark.parametrize(
    ("header", "body", "now", "code"),
    [
        (None, b"{}", 0, "signature_missing"),
        ("v1=abc", b"{}", 0, "signature_malformed"),
        (sign_timestamped("other", b"{}", 100), b"{}", 100, "signature_mismatch"),
        (sign_timestamped("whsec", b"{}", 100), b'{"x":1}', 100, "signature_mismatch"),
        (sign_timestamped("whsec", b"{}", 100), b"{}", 100 + 301, "signature_stale"),
        (sign_timestamped("whsec", b"{}", 1000), b"{}", 1000 - 301, "signature_stale"),
    ],
)
def test_forged_tampered_and_stale_stripe_signatures_fail(
    header: str | None, body: bytes, now: float, code: str
) -> None:
    with pytest.raises(SignatureError, match=code):
        verify_timestamped(header, body, "whsec", now=now)


def test_checkout_signatures() -> None:
    import hashlib
    import hmac

    body = b'{"id": "evt_cko"}'
    good = hmac.new(b"cko-secret", body, hashlib.sha256).hexdigest()
    verify_checkout(good, body, "cko-secret")
    with pytest.raises(SignatureError):
        verify_checkout(good, body + b" ", "cko-secret")
    with pytest.raises(SignatureError):
        verify_checkout(None, body, "cko-secret")
