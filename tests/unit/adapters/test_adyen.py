"""Adyen Checkout v71: request bodies validated against the published API
description (tests/fixtures), every result code mapped, errors classified."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.adyen.adapter import AdyenAdapter
from adapters.adyen.settings import AdyenSettings
from adapters.adyen.statuses import RESULT_CODES
from adapters.base import PaymentOrder, ResultStatus
from adapters.credentials import AcquirerToken
from adapters.errors import IntegrationError, NotProcessed, OutcomeUnknown
from tests import specs
from tests.unit.adapters import schemas
from tests.unit.adapters.wire import BASE, FOLLOW, ORDER, key, sent


def validate(body: dict[str, Any], schema_name: str) -> None:
    schemas.validate(specs.adyen(), schema_name, body)


def spec_result_codes() -> list[str]:
    codes: list[str] = specs.adyen()["components"]["schemas"]["PaymentResponse"]["properties"][
        "resultCode"
    ]["enum"]
    return codes


@pytest.fixture
def adyen(session: aiohttp.ClientSession) -> AdyenAdapter:
    settings = AdyenSettings(
        base_url=BASE,
        api_key=key("AQE_key_xxxxxx"),
        merchant_account="ShopECOM",
        return_url="https://shop.example/return",
    )
    return AdyenAdapter("adyen", settings, session, BASE)


@pytest.mark.parametrize("capture", [False, True])
async def test_payments_request_validates_against_checkout_v71(
    adyen: AdyenAdapter, capture: bool
) -> None:
    order = replace(ORDER, capture=capture)
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments",
            status=200,
            payload={"pspReference": "PSP1", "resultCode": "Authorised"},
        )
        result = await adyen.create(order)
        _method, _url, request = sent(mock)
    body = json.loads(request["data"])
    validate(body, "PaymentRequest")
    assert request["headers"]["X-API-Key"] == "AQE_key_xxxxxx"
    assert request["headers"]["Idempotency-Key"] == ORDER.idempotency_key
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
async def test_modifications_validate_and_are_pending_until_the_webhook(
    adyen: AdyenAdapter, call: str, path: str, schema: str
) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/payments/ref_1/{path}",
            status=201,
            payload={"pspReference": "MOD1", "status": "received"},
        )
        result = await getattr(adyen, call)(FOLLOW)
        _, _, request = sent(mock)
    validate(json.loads(request["data"]), schema)
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
async def test_result_codes_map_into_the_taxonomy(
    adyen: AdyenAdapter, code: str, expected: ResultStatus
) -> None:
    assert code in spec_result_codes()
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
        assert (await adyen.create(ORDER)).status is expected


def test_every_result_code_in_the_spec_is_mapped() -> None:
    assert set(spec_result_codes()) == set(RESULT_CODES)


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
async def test_errors_map_into_the_taxonomy(
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
            await adyen.create(ORDER)


async def test_an_idempotency_key_over_64_characters_is_refused(adyen: AdyenAdapter) -> None:
    order = PaymentOrder(
        payment_id="p",
        amount=1,
        currency="EUR",
        credential=AcquirerToken("t"),
        capture=True,
        idempotency_key="k" * 65,
    )
    with aioresponses() as mock, pytest.raises(IntegrationError):
        await adyen.create(order)
    assert not mock.requests  # refused before anything was sent
