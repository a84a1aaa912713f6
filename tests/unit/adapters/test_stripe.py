"""Stripe: exact wire requests, checked against the published API description
(tests/fixtures), and every answer mapped into the taxonomy."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.base import Operation, ResultStatus, StatusQuery
from adapters.errors import IntegrationError, NotProcessed, OutcomeUnknown
from adapters.stripe.adapter import StripeAdapter, encode_form
from adapters.stripe.settings import StripeSettings
from tests import specs
from tests.unit.adapters.wire import BASE, FOLLOW, ORDER, key, sent


def _params(path: str) -> set[str]:
    op = specs.stripe()["paths"][path]["post"]
    schema = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return set(schema["properties"])


def _top_level(body: str) -> set[str]:
    return {k.split("[", 1)[0] for k, _ in parse_qsl(body)}


@pytest.fixture
def stripe(session: aiohttp.ClientSession) -> StripeAdapter:
    settings = StripeSettings(base_url=BASE, api_key=key("sk_test_xxxxxxxx"))
    return StripeAdapter("stripe", settings, session, BASE)


def test_stripe_form_encoding_nests_like_deep_objects() -> None:
    assert encode_form({"a": 1, "m": {"k": "v", "skip": None}, "l": [{"x": True}, "y"]}) == [
        ("a", "1"),
        ("m[k]", "v"),
        ("l[0][x]", "true"),
        ("l[1]", "y"),
    ]


async def test_authorize_is_a_confirmed_manual_capture_payment_intent(
    stripe: StripeAdapter,
) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/v1/payment_intents",
            status=200,
            payload={"id": "pi_1", "status": "requires_capture"},
        )
        result = await stripe.create(ORDER)
        method, url, request = sent(mock)
    assert (method, url) == ("POST", f"{BASE}/v1/payment_intents")
    assert request["headers"]["Authorization"] == "Bearer sk_test_xxxxxxxx"
    assert request["headers"]["Idempotency-Key"] == ORDER.idempotency_key
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    params = dict(parse_qsl(request["data"]))
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
    assert _top_level(request["data"]) <= _params("/v1/payment_intents")
    assert (result.status, result.acquirer_reference, result.captured) == (
        ResultStatus.APPROVED,
        "pi_1",
        False,
    )


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
async def test_follow_on_requests_match_the_spec(
    stripe: StripeAdapter, call: str, path: str, expected: dict[str, str]
) -> None:
    answer = {"capture": "succeeded", "void": "canceled", "refund": "succeeded"}[call]
    with aioresponses() as mock:
        mock.post(f"{BASE}{path}", status=200, payload={"id": "x_1", "status": answer})
        result = await getattr(stripe, call)(FOLLOW)
        _, _, request = sent(mock)
    assert dict(parse_qsl(request["data"])) == expected
    assert _top_level(request["data"]) <= _params(path.replace("ref_1", "{intent}"))
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
async def test_answers_map_into_the_taxonomy(
    stripe: StripeAdapter,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    expected: Any,
) -> None:
    with aioresponses() as mock:
        mock.post(f"{BASE}/v1/payment_intents", status=status, payload=body, headers=headers)
        if isinstance(expected, ResultStatus):
            result = await stripe.create(ORDER)
            assert result.status is expected
            if expected is ResultStatus.DECLINED:
                assert result.decline is not None
                assert result.decline.code in ("insufficient_funds", "do_not_honor")
            if expected is ResultStatus.PENDING:
                assert result.next_action is not None
                assert result.next_action.url == "https://3ds"
        else:
            with pytest.raises(expected):
                await stripe.create(ORDER)


async def test_should_retry_false_marks_a_replay_as_useless(stripe: StripeAdapter) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/v1/payment_intents",
            status=500,
            payload={},
            headers={"Stripe-Should-Retry": "false"},
        )
        with pytest.raises(OutcomeUnknown) as caught:
            await stripe.create(ORDER)
    assert caught.value.replayable is False


async def test_status_reads_a_known_intent(stripe: StripeAdapter) -> None:
    with aioresponses() as mock:
        mock.get(
            f"{BASE}/v1/payment_intents/pi_1",
            status=200,
            payload={"id": "pi_1", "status": "succeeded"},
        )
        mock.get(
            re.compile(rf"{BASE}/v1/payment_intents/search\?.*"),
            status=200,
            payload={"object": "search_result", "data": [], "has_more": False},
        )
        found = await stripe.status(StatusQuery(Operation.SALE, "pay_1", "k", "pi_1"))
        assert found is not None
        assert found.approved
        # without the intent's id: searched by our payment id in its metadata, not found
        assert await stripe.status(StatusQuery(Operation.SALE, "pay_1", "k")) is None
