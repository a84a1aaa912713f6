"""Inbound webhooks over HTTP: verified, deduplicated, and they move payments
out of pending and unknown."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from router.config import Config
from router.idempotency.memory import MemoryStore
from router.records import OpLock, PaymentRecord, RefundRecord
from router.states import PaymentState, RefundState
from router.webhooks.signatures import adyen_hmac, sign_timestamped
from tests.conftest import RouterFactory
from tests.helpers import DEMO_KEY, sha

Client = TestClient[Any, Any]
ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
SECRETS = {
    "STRIPE_KEY": "sk_test",
    "STRIPE_WHSEC": "whsec_test",
    "ADYEN_KEY": "ak",
    "ADYEN_HMAC": ADYEN_KEY,
    "CKO_KEY": "sk_sbox",
    "CKO_WHSEC": "cko_secret",
}


def _config() -> Config:
    base = "http://127.0.0.1:9"  # never called here: events are the only input
    return Config.model_validate(
        {
            "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
            "acquirers": {
                "stripe": {
                    "kind": "stripe",
                    "base_url": base,
                    "api_key": {"env": "STRIPE_KEY", "value": SECRETS["STRIPE_KEY"]},
                    "webhook_secret": {"env": "STRIPE_WHSEC", "value": SECRETS["STRIPE_WHSEC"]},
                },
                "adyen": {
                    "kind": "adyen",
                    "base_url": base,
                    "merchant_account": "Shop",
                    "return_url": "https://shop.example/r",
                    "api_key": {"env": "ADYEN_KEY", "value": "ak"},
                    "webhook_secret": {"env": "ADYEN_HMAC", "value": ADYEN_KEY},
                },
                "checkout": {
                    "kind": "checkout",
                    "base_url": base,
                    "api_key": {"env": "CKO_KEY", "value": "sk_sbox"},
                    "webhook_secret": {"env": "CKO_WHSEC", "value": "cko_secret"},
                },
            },
            "routing": {"default": ["stripe"]},
        }
    )


@pytest.fixture
async def setup(router_factory: RouterFactory) -> tuple[Client, MemoryStore]:
    store = MemoryStore()
    client = await router_factory(_config(), store=store, background=False)
    return client, store


def _payment(pid: str, acquirer: str, state: PaymentState, **extra: Any) -> PaymentRecord:
    return PaymentRecord(
        id=pid,
        caller="demo",
        state=state,
        amount=1000,
        currency="EUR",
        capture=True,
        acquirer=acquirer,
        acquirer_key="pr_k",
        acquirer_reference="ref_1",
        **extra,
    )


def _stripe_event(event_id: str, kind: str, pid: str, status: str) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "type": kind,
            "data": {
                "object": {
                    "object": "payment_intent",
                    "id": "pi_1",
                    "status": status,
                    "metadata": {"payrouter_payment_id": pid},
                }
            },
        }
    )


async def _post_stripe(
    client: Client, body: bytes, secret: str = "whsec_test", timestamp: int | None = None
) -> int:
    header = sign_timestamped(secret, body, timestamp)
    resp = await client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": header})
    return resp.status


async def test_a_stripe_event_resolves_an_unknown_payment_once(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    await store.create_payment(_payment("pay_s1", "stripe", PaymentState.UNKNOWN))
    body = _stripe_event("evt_1", "payment_intent.succeeded", "pay_s1", "succeeded")
    assert await _post_stripe(client, body) == 200
    payment = await store.get_payment("pay_s1")
    assert payment is not None
    assert (payment.state, payment.captured_amount) == (PaymentState.CAPTURED, 1000)
    version = payment.version
    assert await _post_stripe(client, body) == 200  # a redelivery: accepted, not re-applied
    again = await store.get_payment("pay_s1")
    assert again is not None
    assert again.version == version


@pytest.mark.parametrize(
    "attack",
    ["forged", "tampered", "stale", "unsigned"],
)
async def test_forged_tampered_stale_and_unsigned_stripe_events_are_refused(
    setup: tuple[Client, MemoryStore],
    attack: str,
) -> None:
    client, store = setup
    await store.create_payment(_payment("pay_s2", "stripe", PaymentState.UNKNOWN))
    body = _stripe_event("evt_2", "payment_intent.succeeded", "pay_s2", "succeeded")
    if attack == "forged":
        status = await _post_stripe(client, body, secret="whsec_guess")
    elif attack == "tampered":
        header = sign_timestamped("whsec_test", body)
        tampered = body.replace(b"succeeded", b"succeeded ")
        status = (
            await client.post(
                "/webhooks/stripe", data=tampered, headers={"Stripe-Signature": header}
            )
        ).status
    elif attack == "stale":
        status = await _post_stripe(client, body, timestamp=int(time.time()) - 301)
    else:
        status = (await client.post("/webhooks/stripe", data=body)).status
    assert status == 401
    payment = await store.get_payment("pay_s2")
    assert payment is not None
    assert payment.state is PaymentState.UNKNOWN


def _adyen_item(code: str, reference: str, success: bool, value: int = 500) -> dict[str, Any]:
    item = {
        "pspReference": f"PSP-{code}",
        "originalReference": "ref_1",
        "merchantAccountCode": "Shop",
        "merchantReference": reference,
        "amount": {"value": value, "currency": "EUR"},
        "eventCode": code,
        "success": "true" if success else "false",
    }
    item["additionalData"] = {"hmacSignature": adyen_hmac(item, ADYEN_KEY)}
    return item


async def test_an_adyen_capture_notification_completes_the_async_capture(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    lock = OpLock(operation="capture", scope="s", amount=500, acquirer_key="pr_c")
    await store.create_payment(_payment("pay_a1", "adyen", PaymentState.AUTHORIZED, op_lock=lock))
    body = orjson.dumps(
        {
            "live": "false",
            "notificationItems": [
                {"NotificationRequestItem": _adyen_item("CAPTURE", "pay_a1", True)}
            ],
        }
    )
    resp = await client.post("/webhooks/adyen", data=body)
    assert (resp.status, await resp.text()) == (200, "[accepted]")
    payment = await store.get_payment("pay_a1")
    assert payment is not None
    assert (payment.state, payment.captured_amount, payment.op_lock) == (
        PaymentState.CAPTURED,
        500,
        None,
    )


async def test_one_bad_adyen_item_refuses_the_whole_batch(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    await store.create_payment(_payment("pay_a2", "adyen", PaymentState.PENDING))
    good = _adyen_item("AUTHORISATION", "pay_a2", True)
    bad = _adyen_item("AUTHORISATION", "pay_a2", True)
    bad["amount"]["value"] = 1  # changed after signing
    body = orjson.dumps(
        {"notificationItems": [{"NotificationRequestItem": good}, {"NotificationRequestItem": bad}]}
    )
    assert (await client.post("/webhooks/adyen", data=body)).status == 401
    payment = await store.get_payment("pay_a2")
    assert payment is not None
    assert payment.state is PaymentState.PENDING


async def test_a_checkout_refund_event_settles_the_refund_and_the_payment(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    await store.create_payment(
        _payment(
            "pay_c1",
            "checkout",
            PaymentState.CAPTURED,
            captured_amount=1000,
            refund_holds={"re_c1": 400},
            refund_ids=["re_c1"],
        )
    )
    await store.create_refund(
        RefundRecord(
            id="re_c1",
            payment_id="pay_c1",
            caller="demo",
            amount=400,
            currency="EUR",
            state=RefundState.PENDING,
            acquirer="checkout",
        )
    )
    body = orjson.dumps(
        {
            "id": "evt_c1",
            "type": "payment_refunded",
            "data": {"id": "ref_1", "reference": "re_c1", "amount": 400},
        }
    )
    signature = hmac.new(b"cko_secret", body, hashlib.sha256).hexdigest()
    resp = await client.post("/webhooks/checkout", data=body, headers={"Cko-Signature": signature})
    assert resp.status == 200
    refund = await store.get_refund("re_c1")
    payment = await store.get_payment("pay_c1")
    assert refund is not None
    assert payment is not None
    assert refund.state is RefundState.SUCCEEDED
    assert (payment.state, payment.refunded_amount, payment.refund_holds) == (
        PaymentState.PARTIALLY_REFUNDED,
        400,
        {},
    )
    resp = await client.post("/webhooks/checkout", data=body, headers={"Cko-Signature": "00"})
    assert resp.status == 401


async def test_webhooks_for_unknown_or_sandbox_acquirers_are_404(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, _ = setup
    assert (await client.post("/webhooks/nobody", data=b"{}")).status == 404
