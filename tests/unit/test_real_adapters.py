"""Stripe, Adyen and Checkout.com adapters: exact wire requests (checked against
the reference specs in ../shared/specs) and every status/error mapping."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import jsonschema
import pytest
from aioresponses import aioresponses

from adapters.adyen import AdyenAdapter
from adapters.base import (
    FollowOnOrder,
    IntegrationError,
    NotProcessed,
    Operation,
    OutcomeUnknown,
    PaymentOrder,
    ResultStatus,
    StatusQuery,
)
from adapters.checkout import CheckoutAdapter
from adapters.stripe import StripeAdapter, encode_form

#: ../shared/specs beside the checkout (CI clones main with shared/ beside it)
SPECS = Path(__file__).resolve().parents[3] / "shared" / "specs"

BASE = "http://127.0.0.1:9"
ORDER = PaymentOrder(
    payment_id="pay_1",
    amount=1299,
    currency="EUR",
    payment_method="pm_card_visa",
    capture=False,
    idempotency_key="pr_" + "a" * 48,
    merchant_reference="order-7",
    metadata={"cart": "42"},
)
FOLLOW = FollowOnOrder(
    payment_id="pay_1",
    acquirer_reference="ref_1",
    amount=500,
    currency="EUR",
    idempotency_key="pr_key2",
    refund_id="re_1",
)


@functools.cache
def _spec(name: str) -> dict[str, Any]:
    path = SPECS / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _sent(mock: aioresponses) -> tuple[str, str, dict[str, Any]]:
    (((method, url), calls),) = mock.requests.items()
    return method, str(url), calls[0].kwargs


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


# ------------------------------------------------------------------- Stripe


def _stripe_params(path: str) -> set[str]:
    op = _spec("stripe-spec3-2022-04-12.paths-extract.json")["paths"][path]["post"]
    schema = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return set(schema["properties"])


def _top_level(body: str) -> set[str]:
    return {k.split("[", 1)[0] for k, _ in parse_qsl(body)}


def test_stripe_form_encoding_nests_like_deep_objects() -> None:
    assert encode_form({"a": 1, "m": {"k": "v", "skip": None}, "l": [{"x": True}, "y"]}) == [
        ("a", "1"),
        ("m[k]", "v"),
        ("l[0][x]", "true"),
        ("l[1]", "y"),
    ]


@pytest.fixture
def stripe(session: aiohttp.ClientSession) -> StripeAdapter:
    return StripeAdapter("stripe", session, BASE, api_key="sk_test_x")


async def test_stripe_authorize_is_a_confirmed_manual_capture_payment_intent(
    stripe: StripeAdapter,
) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/v1/payment_intents",
            status=200,
            payload={"id": "pi_1", "status": "requires_capture"},
        )
        result = await stripe.authorize(ORDER)
        method, url, sent = _sent(mock)
    assert (method, url) == ("POST", f"{BASE}/v1/payment_intents")
    assert sent["headers"]["Authorization"] == "Bearer sk_test_x"
    assert sent["headers"]["Idempotency-Key"] == ORDER.idempotency_key
    assert sent["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    params = dict(parse_qsl(sent["data"]))
    assert params == {
        "amount": "1299",
        "currency": "eur",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "capture_method": "manual",
        "metadata[cart]": "42",
        "metadata[payrouter_payment_id]": "pay_1",
        "metadata[merchant_reference]": "order-7",
    }
    assert _top_level(sent["data"]) <= _stripe_params("/v1/payment_intents")
    assert (result.status, result.acquirer_reference) == (ResultStatus.APPROVED, "pi_1")


@pytest.mark.parametrize(
    ("call", "path", "expected"),
    [
        ("capture", "/v1/payment_intents/ref_1/capture", {"amount_to_capture": "500"}),
        (
            "void",
            "/v1/payment_intents/ref_1/cancel",
            {"cancellation_reason": "requested_by_customer"},
        ),
        (
            "refund",
            "/v1/refunds",
            {
                "payment_intent": "ref_1",
                "amount": "500",
                "metadata[payrouter_refund_id]": "re_1",
                "metadata[payrouter_payment_id]": "pay_1",
            },
        ),
    ],
)
async def test_stripe_follow_on_requests_match_the_spec(
    stripe: StripeAdapter, call: str, path: str, expected: dict[str, str]
) -> None:
    answer = {"capture": "succeeded", "void": "canceled", "refund": "succeeded"}[call]
    with aioresponses() as mock:
        mock.post(f"{BASE}{path}", status=200, payload={"id": "x_1", "status": answer})
        result = await getattr(stripe, call)(FOLLOW)
        _, _, sent = _sent(mock)
    assert dict(parse_qsl(sent["data"])) == expected
    spec_path = path.replace("ref_1", "{intent}")
    assert _top_level(sent["data"]) <= _stripe_params(spec_path)
    assert result.approved


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (
            402,
            {
                "error": {
                    "type": "card_error",
                    "decline_code": "insufficient_funds",
                    "payment_intent": {"id": "pi_9"},
                }
            },
            {},
            ResultStatus.DECLINED,
        ),
        (
            200,
            {
                "id": "pi_1",
                "status": "requires_action",
                "next_action": {"redirect_to_url": {"url": "https://3ds"}},
            },
            {},
            ResultStatus.PENDING,
        ),
        (
            200,
            {
                "id": "pi_1",
                "status": "requires_payment_method",
                "last_payment_error": {"decline_code": "do_not_honor"},
            },
            {},
            ResultStatus.DECLINED,
        ),
        (429, {"error": {"type": "rate_limit_error"}}, {}, NotProcessed),
        (400, {"error": {"type": "invalid_request_error"}}, {}, IntegrationError),
        (401, {"error": {"type": "authentication_error"}}, {}, IntegrationError),
        (409, {"error": {"type": "idempotency_error"}}, {}, OutcomeUnknown),
        (500, {"error": {"type": "api_error"}}, {"Stripe-Should-Retry": "true"}, OutcomeUnknown),
    ],
)
async def test_stripe_answers_map_into_the_taxonomy(
    stripe: StripeAdapter,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    expected: Any,
) -> None:
    with aioresponses() as mock:
        mock.post(f"{BASE}/v1/payment_intents", status=status, payload=body, headers=headers)
        if isinstance(expected, ResultStatus):
            result = await stripe.authorize(ORDER)
            assert result.status is expected
            if expected is ResultStatus.DECLINED:
                assert result.decline_code in ("insufficient_funds", "do_not_honor")
            if expected is ResultStatus.PENDING:
                assert result.redirect_url == "https://3ds"
        else:
            with pytest.raises(expected):
                await stripe.authorize(ORDER)


async def test_stripe_should_retry_false_marks_a_replay_as_useless(stripe: StripeAdapter) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/v1/payment_intents",
            status=500,
            payload={},
            headers={"Stripe-Should-Retry": "false"},
        )
        with pytest.raises(OutcomeUnknown) as caught:
            await stripe.sale(ORDER)
    assert caught.value.replayable is False


async def test_stripe_status_reads_a_known_intent(stripe: StripeAdapter) -> None:
    with aioresponses() as mock:
        mock.get(
            f"{BASE}/v1/payment_intents/pi_1",
            status=200,
            payload={"id": "pi_1", "status": "succeeded"},
        )
        found = await stripe.status(StatusQuery(Operation.SALE, "pay_1", "k", "pi_1"))
    assert found is not None
    assert found.approved
    assert await stripe.status(StatusQuery(Operation.SALE, "pay_1", "k")) is None


# -------------------------------------------------------------------- Adyen


def _adyen_validate(body: dict[str, Any], schema_name: str) -> None:
    spec = _spec("adyen-CheckoutService-v71.json")
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


@pytest.fixture
def adyen(session: aiohttp.ClientSession) -> AdyenAdapter:
    return AdyenAdapter(
        "adyen",
        session,
        BASE,
        api_key="AQE_key",
        merchant_account="ShopECOM",
        return_url="https://shop.example/return",
    )


@pytest.mark.parametrize("capture", [False, True])
async def test_adyen_payments_request_validates_against_checkout_v71(
    adyen: AdyenAdapter, capture: bool
) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments",
            status=200,
            payload={"pspReference": "PSP1", "resultCode": "Authorised"},
        )
        result = await (adyen.sale(ORDER) if capture else adyen.authorize(ORDER))
        _method, _url, sent = _sent(mock)
    body = json.loads(sent["data"])
    _adyen_validate(body, "PaymentRequest")
    assert sent["headers"]["X-API-Key"] == "AQE_key"
    assert sent["headers"]["Idempotency-Key"] == ORDER.idempotency_key
    assert body["amount"] == {"value": 1299, "currency": "EUR"}
    assert body["reference"] == "pay_1"
    assert ("captureDelayHours" in body) is capture
    assert (body.get("additionalData") == {"manualCapture": "true"}) is not capture
    assert (result.status, result.acquirer_reference) == (ResultStatus.APPROVED, "PSP1")


@pytest.mark.parametrize(
    ("call", "path", "schema"),
    [
        ("capture", "captures", "PaymentCaptureRequest"),
        ("void", "cancels", "PaymentCancelRequest"),
        ("refund", "refunds", "PaymentRefundRequest"),
    ],
)
async def test_adyen_modifications_validate_and_are_pending_until_the_webhook(
    adyen: AdyenAdapter, call: str, path: str, schema: str
) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments/ref_1/{path}",
            status=201,
            payload={"pspReference": "MOD1", "status": "received"},
        )
        result = await getattr(adyen, call)(FOLLOW)
        _, _, sent = _sent(mock)
    _adyen_validate(json.loads(sent["data"]), schema)
    assert (result.status, result.acquirer_reference) == (ResultStatus.PENDING, "MOD1")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("Authorised", ResultStatus.APPROVED),
        ("Refused", ResultStatus.DECLINED),
        ("Cancelled", ResultStatus.DECLINED),
        ("Error", ResultStatus.DECLINED),
        ("Pending", ResultStatus.PENDING),
        ("Received", ResultStatus.PENDING),
        ("RedirectShopper", ResultStatus.PENDING),
        ("ChallengeShopper", ResultStatus.PENDING),
        ("IdentifyShopper", ResultStatus.PENDING),
    ],
)
async def test_adyen_result_codes_map_into_the_taxonomy(
    adyen: AdyenAdapter, code: str, expected: ResultStatus
) -> None:
    spec_codes = _spec("adyen-CheckoutService-v71.json")["components"]["schemas"][
        "PaymentResponse"
    ]["properties"]["resultCode"]["enum"]
    assert code in spec_codes
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments",
            status=200,
            payload={
                "pspReference": "P",
                "resultCode": code,
                "refusalReasonCode": "2",
                "action": {"url": "https://3ds"},
            },
        )
        assert (await adyen.authorize(ORDER)).status is expected


def test_every_adyen_result_code_in_the_spec_is_mapped() -> None:
    from adapters.adyen import RESULT_CODES

    spec_codes = _spec("adyen-CheckoutService-v71.json")["components"]["schemas"][
        "PaymentResponse"
    ]["properties"]["resultCode"]["enum"]
    assert set(spec_codes) == set(RESULT_CODES)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (500, {"Transient-Error": "true"}, NotProcessed),
        (503, {"Transient-Error": "true"}, NotProcessed),
        (429, {}, NotProcessed),
        (500, {}, OutcomeUnknown),
        (502, {}, OutcomeUnknown),
        (422, {}, IntegrationError),
        (401, {}, IntegrationError),
    ],
)
async def test_adyen_errors_map_into_the_taxonomy(
    adyen: AdyenAdapter, status: int, headers: dict[str, str], expected: type[Exception]
) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments",
            status=status,
            headers=headers,
            payload={"errorCode": "000", "message": "x"},
        )
        with pytest.raises(expected):
            await adyen.authorize(ORDER)


async def test_adyen_refuses_an_idempotency_key_over_64_characters(adyen: AdyenAdapter) -> None:
    order = PaymentOrder(
        payment_id="p",
        amount=1,
        currency="EUR",
        payment_method="t",
        capture=True,
        idempotency_key="k" * 65,
    )
    with aioresponses() as mock, pytest.raises(IntegrationError):
        await adyen.sale(order)
    assert not mock.requests  # refused before anything was sent


# ----------------------------------------------------------------- Checkout


@pytest.fixture
def checkout(session: aiohttp.ClientSession) -> CheckoutAdapter:
    return CheckoutAdapter("cko", session, BASE, api_key="sk_sbox_x")


async def test_checkout_payment_request_shape(checkout: CheckoutAdapter) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments",
            status=201,
            payload={"id": "pay_cko", "status": "Authorized", "approved": True},
        )
        result = await checkout.authorize(ORDER)
        _, _, sent = _sent(mock)
    assert sent["headers"]["Cko-Idempotency-Key"] == ORDER.idempotency_key
    assert sent["headers"]["Authorization"] == "Bearer sk_sbox_x"
    assert json.loads(sent["data"]) == {
        "source": {"type": "id", "id": "pm_card_visa"},
        "amount": 1299,
        "currency": "EUR",
        "reference": "pay_1",
        "capture": False,
        "metadata": {"cart": "42", "merchant_reference": "order-7"},
    }
    assert (result.status, result.acquirer_reference) == (ResultStatus.APPROVED, "pay_cko")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, {"id": "p", "status": "Declined", "response_code": "20051"}, ResultStatus.DECLINED),
        (
            202,
            {"id": "p", "status": "Pending", "_links": {"redirect": {"href": "https://3ds"}}},
            ResultStatus.PENDING,
        ),
        (201, {"id": "p", "status": "Captured"}, ResultStatus.APPROVED),
        (429, {}, NotProcessed),
        (422, {}, IntegrationError),
        (502, {}, OutcomeUnknown),
        (409, {}, OutcomeUnknown),
    ],
)
async def test_checkout_answers_map_into_the_taxonomy(
    checkout: CheckoutAdapter, status: int, body: dict[str, Any], expected: Any
) -> None:
    with aioresponses() as mock:
        mock.post(f"{BASE}/payments", status=status, payload=body)
        if isinstance(expected, ResultStatus):
            assert (await checkout.sale(ORDER)).status is expected
        else:
            with pytest.raises(expected):
                await checkout.sale(ORDER)


async def test_checkout_actions_are_pending_and_resolved_from_the_action_list(
    checkout: CheckoutAdapter,
) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments/ref_1/refunds",
            status=202,
            payload={"action_id": "act_1", "reference": "re_1"},
        )
        mock.get(
            f"{BASE}/payments/ref_1/actions",
            status=200,
            payload=[
                {"id": "act_0", "type": "Capture", "approved": True, "reference": "pay_1"},
                {"id": "act_1", "type": "Refund", "approved": True, "reference": "re_1"},
            ],
        )
        pending = await checkout.refund(FOLLOW)
        settled = await checkout.status(
            StatusQuery(Operation.REFUND, "pay_1", "k", "ref_1", "re_1")
        )
    assert pending.status is ResultStatus.PENDING
    assert settled is not None
    assert (settled.status, settled.acquirer_reference) == (ResultStatus.APPROVED, "act_1")
