"""Webhook signature schemes: the acquirers' published vectors pass, forgeries
fail, and a malformed delivery is a refusal, never a crash."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.adyen.webhooks import WEBHOOKS as ADYEN
from adapters.adyen.webhooks import item_hmac, signing_string, verify_item
from adapters.checkout.webhooks import WEBHOOKS as CHECKOUT
from adapters.connector import SignatureInvalid, WebhookRefused
from adapters.signing import sign_timestamped, verify_hex_body, verify_timestamped
from adapters.stripe.webhooks import WEBHOOKS as STRIPE
from tests import specs

VECTOR_KEY = "74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"
WHSEC = "whsec_0123456789abcdef"


def test_the_adyen_vectors_are_in_the_repository() -> None:
    assert len(specs.adyen_hmac_vectors()) == 4


@pytest.mark.parametrize("path", specs.adyen_hmac_vectors(), ids=lambda p: p.stem)
def test_adyen_hmac_vectors_verify(path: Path) -> None:
    item: dict[str, Any] = json.loads(path.read_text())
    verify_item(item, [VECTOR_KEY])


@pytest.mark.parametrize("path", specs.adyen_hmac_vectors(), ids=lambda p: p.stem)
def test_a_tampered_adyen_item_fails(path: Path) -> None:
    item: dict[str, Any] = json.loads(path.read_text())
    item["amount"]["value"] = int(item["amount"]["value"]) + 1
    with pytest.raises(SignatureInvalid, match="signature_mismatch"):
        verify_item(item, [VECTOR_KEY])


def test_the_documented_adyen_signing_string_vector() -> None:
    item = {
        "pspReference": "7914073381342284",
        "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704",
        "amount": {"value": 1130, "currency": "EUR"},
        "eventCode": "AUTHORISATION",
        "success": "true",
    }
    assert signing_string(item) == (
        "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    )
    key = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
    assert item_hmac(item, key) == "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="


def test_stripe_style_signatures_verify_with_any_of_several_v1() -> None:
    body = b'{"id": "evt_1"}'
    header = sign_timestamped(WHSEC, body, 1_700_000_000)
    assert verify_timestamped(header, body, [WHSEC], now=1_700_000_100) == 1_700_000_000
    rotated = header.replace("v1=", "v1=deadbeef,v1=")
    assert verify_timestamped(rotated, body, [WHSEC], now=1_700_000_100) == 1_700_000_000


def test_any_of_several_secrets_verifies_while_one_is_rotated() -> None:
    body = b'{"id": "evt_1"}'
    header = sign_timestamped("whsec_the_new_one_0123", body, 1_700_000_000)
    assert (
        verify_timestamped(header, body, [WHSEC, "whsec_the_new_one_0123"], now=1_700_000_000)
        == 1_700_000_000
    )


@pytest.mark.parametrize(
    ("header", "body", "now", "code"),
    [
        (None, b"{}", 0, "signature_missing"),
        ("v1=abc", b"{}", 0, "signature_malformed"),
        ("t=1,v1=\u00e9\u00e9", b"{}", 1, "signature_mismatch"),
        (sign_timestamped("other_secret_000", b"{}", 100), b"{}", 100, "signature_mismatch"),
        (sign_timestamped(WHSEC, b"{}", 100), b'{"x":1}', 100, "signature_mismatch"),
        (sign_timestamped(WHSEC, b"{}", 100), b"{}", 100 + 301, "signature_stale"),
        (sign_timestamped(WHSEC, b"{}", 1000), b"{}", 1000 - 301, "signature_stale"),
    ],
)
def test_forged_tampered_and_stale_stripe_signatures_fail(
    header: str | None, body: bytes, now: float, code: str
) -> None:
    with pytest.raises(SignatureInvalid, match=code):
        verify_timestamped(header, body, [WHSEC], now=now)


def test_checkout_signatures() -> None:
    body = b'{"id": "evt_cko"}'
    good = hmac.new(b"cko-secret-0123456", body, hashlib.sha256).hexdigest()
    verify_hex_body(good, body, ["cko-secret-0123456"])
    for header, payload in ((good, body + b" "), (None, body), ("\u00e9", body)):
        with pytest.raises(SignatureInvalid):
            verify_hex_body(header, payload, ["cko-secret-0123456"])


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"notificationItems": "abc"}', b'{"notificationItems": [1]}', b"not json", b"{}"],
)
def test_a_malformed_adyen_batch_is_a_400_never_a_crash(body: bytes) -> None:
    with pytest.raises(WebhookRefused) as caught:
        ADYEN.read({}, body, [VECTOR_KEY])
    assert caught.value.status == 400


def test_an_adyen_item_with_a_non_ascii_signature_is_forged() -> None:
    item = {"eventCode": "AUTHORISATION", "additionalData": {"hmacSignature": "\u00e9"}}
    body = orjson.dumps({"notificationItems": [{"NotificationRequestItem": item}]})
    with pytest.raises(SignatureInvalid):
        ADYEN.read({}, body, [VECTOR_KEY])


@pytest.mark.parametrize("event", [[], 1, {"id": 5}, {"type": "payment_intent.succeeded"}])
def test_a_validly_signed_stripe_event_without_an_id_is_a_400(event: Any) -> None:
    body = orjson.dumps(event)
    header = sign_timestamped(WHSEC, body)
    with pytest.raises(WebhookRefused) as caught:
        STRIPE.read({"Stripe-Signature": header}, body, [WHSEC])
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt", "data": "x"},
        {"id": "evt", "data": {"object": [1]}},
        {"id": "evt", "type": "payment_intent.succeeded", "data": {"object": {"metadata": 7}}},
        {"id": "evt", "data": {"object": {"object": "refund", "metadata": {"x": 1}}}},
    ],
)
def test_a_validly_signed_but_oddly_shaped_stripe_event_changes_nothing(event: Any) -> None:
    body = orjson.dumps(event)
    header = sign_timestamped(WHSEC, body)
    assert STRIPE.read({"Stripe-Signature": header}, body, [WHSEC]) == []


def test_a_checkout_event_with_odd_data_is_no_crash() -> None:
    body = orjson.dumps({"id": "evt", "type": "payment_captured", "data": ["x"]})
    header = hmac.new(b"cko-secret-0123456", body, hashlib.sha256).hexdigest()
    events = CHECKOUT.read({"Cko-Signature": header}, body, ["cko-secret-0123456"])
    assert [e.reference for e in events] == [""]
