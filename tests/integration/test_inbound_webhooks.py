"""Inbound webhooks over HTTP: verified, deduplicated, only for the records
they may touch, and they move payments out of pending and unknown."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from adapters.adyen.webhooks import item_hmac
from adapters.base import Operation
from adapters.signing import sign_timestamped
from router.config import Config
from router.payments.records import (
    Attempt,
    AttemptOutcome,
    OperationRecord,
    PaymentRecord,
    RefundRecord,
)
from router.payments.states import OperationState, PaymentState
from router.store.memory import MemoryStore
from tests.conftest import RouterFactory
from tests.helpers import (
    ADYEN_HMAC_KEY,
    CKO_WEBHOOK_SECRET,
    DEMO_KEY,
    STRIPE_WHSEC,
    sha,
    webhook_acquirers,
)

Client = TestClient[Any, Any]
ADYEN_KEY, WHSEC, CKO_SECRET = ADYEN_HMAC_KEY, STRIPE_WHSEC, CKO_WEBHOOK_SECRET


def _config(**stripe: Any) -> Config:
    return Config.model_validate(
        {
            "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
            "acquirers": webhook_acquirers(**stripe),
            "routing": {"default": ["stripe"]},
        }
    )


@pytest.fixture
async def setup(router_factory: RouterFactory) -> tuple[Client, MemoryStore]:
    store = MemoryStore()
    client = await router_factory(_config(), store=store, background=False)
    return client, store


def _attempt(acquirer: str, outcome: AttemptOutcome | None = None) -> Attempt:
    return Attempt(
        acquirer=acquirer,
        acquirer_key="pr_k",
        operation=Operation.SALE,
        started_ms=1,
        outcome=outcome,
        acquirer_reference="ref_1" if outcome else None,
    )


def _payment(
    pid: str, acquirer: str, state: PaymentState, *, livemode: bool = False, **extra: Any
) -> PaymentRecord:
    outcome = (
        None if state in (PaymentState.UNKNOWN, PaymentState.PENDING) else (AttemptOutcome.APPROVED)
    )
    return PaymentRecord(
        id=pid,
        tenant="demo:test",
        livemode=livemode,
        state=state,
        amount=1000,
        currency="EUR",
        capture=True,
        acquirer=acquirer,
        acquirer_key="pr_k",
        acquirer_reference="ref_1",
        attempts=[_attempt(acquirer, outcome)],
        version=1,
        **extra,
    )


async def _create(store: MemoryStore, record: PaymentRecord | RefundRecord) -> None:
    assert await store.restore(record)


def _stripe_event(event_id: str, kind: str, pid: str, status: str, intent: str = "ref_1") -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "type": kind,
            "data": {
                "object": {
                    "object": "payment_intent",
                    "id": intent,
                    "status": status,
                    "metadata": {"payrouter_payment_id": pid},
                }
            },
        }
    )


async def _post_stripe(
    client: Client, body: bytes, secret_: str = WHSEC, timestamp: int | None = None
) -> int:
    header = sign_timestamped(secret_, body, timestamp)
    resp = await client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": header})
    return resp.status


async def test_a_stripe_event_resolves_an_unknown_payment_once(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    await _create(store, _payment("pay_733100000000000000000000", "stripe", PaymentState.UNKNOWN))
    body = _stripe_event(
        "evt_1", "payment_intent.succeeded", "pay_733100000000000000000000", "succeeded"
    )
    assert await _post_stripe(client, body) == 200
    payment = await store.get_payment("pay_733100000000000000000000")
    assert payment is not None
    assert (payment.state, payment.captured_amount) == (PaymentState.CAPTURED, 1000)
    version = payment.version
    assert await _post_stripe(client, body) == 200  # a redelivery: accepted, not re-applied
    again = await store.get_payment("pay_733100000000000000000000")
    assert again is not None
    assert again.version == version


@pytest.mark.parametrize(
    "attack",
    ["forged", "tampered", "stale", "unsigned", "non_ascii"],
)
async def test_forged_tampered_stale_and_unsigned_stripe_events_are_refused(
    setup: tuple[Client, MemoryStore],
    attack: str,
) -> None:
    client, store = setup
    await _create(store, _payment("pay_733200000000000000000000", "stripe", PaymentState.UNKNOWN))
    body = _stripe_event(
        "evt_2", "payment_intent.succeeded", "pay_733200000000000000000000", "succeeded"
    )
    if attack == "forged":
        status = await _post_stripe(client, body, secret_="whsec_a_guess_0000")
    elif attack == "tampered":
        header = sign_timestamped(WHSEC, body)
        tampered = body.replace(b"succeeded", b"succeeded ")
        status = (
            await client.post(
                "/webhooks/stripe", data=tampered, headers={"Stripe-Signature": header}
            )
        ).status
    elif attack == "stale":
        status = await _post_stripe(client, body, timestamp=int(time.time()) - 301)
    elif attack == "non_ascii":
        header = f"t={int(time.time())},v1=\u00e9\u00e9".encode().decode("latin-1")
        status = (
            await client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": header})
        ).status
    else:
        status = (await client.post("/webhooks/stripe", data=body)).status
    assert status == 401
    payment = await store.get_payment("pay_733200000000000000000000")
    assert payment is not None
    assert payment.state is PaymentState.UNKNOWN


async def test_an_event_naming_another_acquirer_reference_changes_nothing(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    payment = _payment("pay_733300000000000000000000", "stripe", PaymentState.UNKNOWN)
    payment.attempts[0] = payment.attempts[0].model_copy(update={"acquirer_reference": "pi_ours"})
    await _create(store, payment)
    body = _stripe_event(
        "evt_3",
        "payment_intent.succeeded",
        "pay_733300000000000000000000",
        "succeeded",
        "pi_theirs",
    )
    assert await _post_stripe(client, body) == 200
    stored = await store.get_payment("pay_733300000000000000000000")
    assert stored is not None
    assert stored.state is PaymentState.UNKNOWN


async def test_an_event_for_a_payment_never_sent_to_that_acquirer_changes_nothing(
    setup: tuple[Client, MemoryStore],
) -> None:
    """A payment that failed with no acquirer recorded cannot be moved by anyone's events."""
    client, store = setup
    failed = _payment("pay_733400000000000000000000", "stripe", PaymentState.FAILED).model_copy(
        update={"attempts": [], "acquirer": None, "failure_reason": "no_acquirer_available"}
    )
    await _create(store, failed)
    body = _stripe_event(
        "evt_4", "payment_intent.amount_capturable_updated", "pay_733400000000000000000000", "x"
    )
    assert await _post_stripe(client, body) == 200
    stored = await store.get_payment("pay_733400000000000000000000")
    assert stored is not None
    assert stored.state is PaymentState.FAILED


async def test_a_test_mode_acquirers_event_never_moves_a_live_payment(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    await _create(
        store,
        _payment("pay_733500000000000000000000", "stripe", PaymentState.UNKNOWN, livemode=True),
    )
    body = _stripe_event(
        "evt_5", "payment_intent.succeeded", "pay_733500000000000000000000", "succeeded"
    )
    assert await _post_stripe(client, body) == 200
    stored = await store.get_payment("pay_733500000000000000000000")
    assert stored is not None
    assert stored.state is PaymentState.UNKNOWN


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
    item["additionalData"] = {"hmacSignature": item_hmac(item, ADYEN_KEY)}
    return item


async def test_an_adyen_capture_notification_completes_the_async_capture(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    capture = OperationRecord(
        id="cap_00" + "1" * 22,
        operation=Operation.CAPTURE,
        amount=500,
        state=OperationState.PENDING,
        attempt=Attempt(
            acquirer="adyen",
            acquirer_key="pr_c",
            operation=Operation.CAPTURE,
            started_ms=1,
            outcome=AttemptOutcome.PENDING,
            acquirer_reference="PSP-CAPTURE",
        ),
    )
    payment = _payment(
        "pay_613100000000000000000000", "adyen", PaymentState.AUTHORIZED, operations=[capture]
    )
    payment.capture = False
    await _create(store, payment)
    body = orjson.dumps(
        {
            "live": "false",
            "notificationItems": [
                {
                    "NotificationRequestItem": _adyen_item(
                        "CAPTURE", "pay_613100000000000000000000", True
                    )
                }
            ],
        }
    )
    resp = await client.post("/webhooks/adyen", data=body)
    assert (resp.status, await resp.text()) == (200, "[accepted]")
    stored = await store.get_payment("pay_613100000000000000000000")
    assert stored is not None
    assert (stored.state, stored.captured_amount, stored.open_operation()) == (
        PaymentState.CAPTURED,
        500,
        None,
    )


async def test_one_bad_adyen_item_refuses_the_whole_batch(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    await _create(store, _payment("pay_613200000000000000000000", "adyen", PaymentState.PENDING))
    good = _adyen_item("AUTHORISATION", "pay_613200000000000000000000", True)
    bad = _adyen_item("AUTHORISATION", "pay_613200000000000000000000", True)
    bad["amount"]["value"] = 1  # changed after signing
    body = orjson.dumps(
        {"notificationItems": [{"NotificationRequestItem": good}, {"NotificationRequestItem": bad}]}
    )
    assert (await client.post("/webhooks/adyen", data=body)).status == 401
    payment = await store.get_payment("pay_613200000000000000000000")
    assert payment is not None
    assert payment.state is PaymentState.PENDING


@pytest.mark.parametrize("body", [b"[]", b'{"notificationItems": "abc"}', b"\xff"])
async def test_a_malformed_adyen_delivery_is_400(
    setup: tuple[Client, MemoryStore], body: bytes
) -> None:
    client, _ = setup
    resp = await client.post("/webhooks/adyen", data=body)
    assert resp.status == 400
    assert resp.headers["Content-Type"].startswith("application/problem+json")


async def test_a_checkout_refund_event_settles_the_refund_and_the_payment(
    setup: tuple[Client, MemoryStore],
) -> None:
    client, store = setup
    await _create(
        store,
        _payment(
            "pay_633100000000000000000000",
            "checkout",
            PaymentState.CAPTURED,
            captured_amount=1000,
            refund_holds={"re_633100000000000000000000": 400},
            refund_ids=["re_633100000000000000000000"],
        ),
    )
    await _create(
        store,
        RefundRecord(
            id="re_633100000000000000000000",
            payment_id="pay_633100000000000000000000",
            tenant="demo:test",
            amount=400,
            currency="EUR",
            state=OperationState.PENDING,
            acquirer="checkout",
            attempt=Attempt(
                acquirer="checkout",
                acquirer_key="pr_r",
                operation=Operation.REFUND,
                started_ms=1,
                outcome=AttemptOutcome.PENDING,
                acquirer_reference="act_1",
            ),
            version=1,
        ),
    )
    body = orjson.dumps(
        {
            "id": "evt_c1",
            "type": "payment_refunded",
            "data": {
                "id": "ref_1",
                "action_id": "act_1",
                "reference": "re_633100000000000000000000",
                "amount": 400,
            },
        }
    )
    signature = hmac.new(CKO_SECRET.encode(), body, hashlib.sha256).hexdigest()
    resp = await client.post("/webhooks/checkout", data=body, headers={"Cko-Signature": signature})
    assert resp.status == 200
    refund = await store.get_refund("re_633100000000000000000000")
    payment = await store.get_payment("pay_633100000000000000000000")
    assert refund is not None
    assert payment is not None
    assert refund.state is OperationState.SUCCEEDED
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
