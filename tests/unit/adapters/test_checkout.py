"""Checkout.com: request shapes, answers mapped into the taxonomy, and
follow-ons resolved from the payment's action list."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.base import Operation, ResultStatus, StatusQuery
from adapters.checkout.adapter import CheckoutAdapter
from adapters.checkout.settings import CheckoutSettings
from adapters.errors import IntegrationError, NotProcessed, OutcomeUnknown
from tests.unit.adapters.wire import BASE, FOLLOW, ORDER, key, sent


@pytest.fixture
def checkout(session: aiohttp.ClientSession) -> CheckoutAdapter:
    settings = CheckoutSettings(base_url=BASE, api_key=key("sk_sbox_xxxxxxxx"))
    return CheckoutAdapter("cko", settings, session, BASE)


async def test_payment_request_shape(checkout: CheckoutAdapter) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments",
            status=201,
            payload={"id": "pay_cko", "status": "Authorized", "approved": True},
        )
        result = await checkout.create(ORDER)
        _, _, request = sent(mock)
    assert request["headers"]["Cko-Idempotency-Key"] == ORDER.idempotency_key
    assert request["headers"]["Authorization"] == "Bearer sk_sbox_xxxxxxxx"
    assert json.loads(request["data"]) == {
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
async def test_answers_map_into_the_taxonomy(
    checkout: CheckoutAdapter, status: int, body: dict[str, Any], expected: Any
) -> None:
    with aioresponses() as mock:
        mock.post(f"{BASE}/payments", status=status, payload=body)
        if isinstance(expected, ResultStatus):
            assert (await checkout.create(ORDER)).status is expected
        else:
            with pytest.raises(expected):
                await checkout.create(ORDER)


async def test_a_decline_carries_the_normalized_and_the_raw_code(checkout: CheckoutAdapter) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments",
            status=201,
            payload={"id": "p", "status": "Declined", "response_code": "20051"},
        )
        result = await checkout.create(ORDER)
    assert result.decline is not None
    assert (result.decline.code, result.decline.raw, result.decline.category) == (
        "insufficient_funds",
        "20051",
        "soft",
    )


async def test_actions_are_pending_and_resolved_from_the_action_list(
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
