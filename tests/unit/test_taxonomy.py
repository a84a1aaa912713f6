"""Foreign failures map into the outcome taxonomy at one boundary, and the
sandbox adapter's status contract maps every reply into it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aioresponses import aioresponses

from adapters.base import FollowOnOrder, Operation, PaymentOrder, ResultStatus, StatusQuery
from adapters.credentials import AcquirerToken
from adapters.errors import IntegrationError, NotProcessed, OutcomeUnknown
from adapters.sandbox.adapter import SandboxAdapter
from adapters.sandbox.settings import SandboxSettings
from adapters.settings import EnvSecret
from adapters.transport import transport_boundary

BASE = "http://127.0.0.1:9"
ORDER = PaymentOrder(
    payment_id="pay_1",
    amount=100,
    currency="EUR",
    credential=AcquirerToken("tok_visa"),
    capture=True,
    idempotency_key="pr_key",
)


def _connector_error() -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, False, None, None, None),
        ConnectionRefusedError(111, "refused"),
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_connector_error(), NotProcessed),
        (aiohttp.ConnectionTimeoutError("connect"), NotProcessed),
        (aiohttp.SocketTimeoutError("read"), OutcomeUnknown),
        (aiohttp.ServerDisconnectedError(), OutcomeUnknown),
        (aiohttp.ClientPayloadError("cut"), OutcomeUnknown),
        (aiohttp.ClientOSError(104, "reset"), OutcomeUnknown),
        (TimeoutError(), OutcomeUnknown),
    ],
)
async def test_transport_failures_map_by_whether_bytes_may_have_left(
    error: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught:
        async with transport_boundary("acq"):
            raise error
    assert caught.value.__cause__ is error  # raise ... from exc: the cause is kept


async def test_cancellation_passes_through_the_boundary_untouched() -> None:
    with pytest.raises(asyncio.CancelledError):
        async with transport_boundary("acq"):
            raise asyncio.CancelledError


@pytest.fixture
async def adapter() -> AsyncIterator[SandboxAdapter]:
    async with aiohttp.ClientSession() as session:
        settings = SandboxSettings(
            base_url=BASE, api_key=EnvSecret(env="SANDBOX_KEY", value="sandbox-key")
        )
        yield SandboxAdapter("sbx", settings, session, BASE)


async def test_sale_sends_the_exact_wire_request(adapter: SandboxAdapter) -> None:
    with aioresponses() as mock:
        mock.post(f"{BASE}/v1/charges", status=201, payload={"id": "ch_1", "status": "captured"})
        result = await adapter.create(ORDER)
        (((method, url), calls),) = mock.requests.items()
    assert (method, str(url)) == ("POST", f"{BASE}/v1/charges")
    sent = calls[0].kwargs
    assert sent["headers"]["Idempotency-Key"] == "pr_key"
    assert sent["headers"]["Authorization"] == "Bearer sandbox-key"
    assert sent["data"] == (
        b'{"amount":100,"currency":"EUR","payment_method":"tok_visa","capture":true,'
        b'"reference":"pay_1"}'
    )
    assert result.status is ResultStatus.APPROVED
    assert result.acquirer_reference == "ch_1"


async def test_a_decline_is_a_value_not_an_exception(adapter: SandboxAdapter) -> None:
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/v1/charges",
            status=201,
            payload={"id": "ch_1", "status": "declined", "decline_code": "do_not_honor"},
        )
        result = await adapter.create(ORDER)
    assert result.status is ResultStatus.DECLINED
    assert result.decline is not None
    assert (result.decline.code, result.decline.raw) == ("do_not_honor", "do_not_honor")


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (503, {"Transient-Error": "true"}, b"{}", NotProcessed),
        (429, {}, b"{}", NotProcessed),
        (503, {}, b"{}", OutcomeUnknown),  # not documented as unprocessed
        (500, {}, b"{}", OutcomeUnknown),
        (502, {}, b"{}", OutcomeUnknown),
        (504, {}, b"{}", OutcomeUnknown),
        (409, {}, b"{}", OutcomeUnknown),
        (200, {}, b"<html>", OutcomeUnknown),  # unparsable 2xx may have moved money
        (201, {}, b'{"weird": 1}', OutcomeUnknown),
        (401, {}, b"{}", IntegrationError),
        (400, {}, b"{}", IntegrationError),
    ],
)
async def test_every_http_answer_maps_into_the_taxonomy(
    adapter: SandboxAdapter,
    status: int,
    headers: dict[str, str],
    body: bytes,
    expected: type[Exception],
) -> None:
    with aioresponses() as mock:
        mock.post(f"{BASE}/v1/charges", status=status, headers=headers, body=body)
        with pytest.raises(expected):
            await adapter.create(ORDER)


async def test_follow_on_operations_use_the_charge_path(adapter: SandboxAdapter) -> None:
    order = FollowOnOrder(
        payment_id="pay_1",
        acquirer_reference="ch_9",
        amount=50,
        currency="EUR",
        idempotency_key="k2",
        refund_id="re_1",
    )
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/v1/charges/ch_9/capture",
            status=200,
            payload={"id": "ch_9", "status": "captured"},
        )
        mock.post(
            f"{BASE}/v1/charges/ch_9/void", status=200, payload={"id": "ch_9", "status": "voided"}
        )
        mock.post(
            f"{BASE}/v1/charges/ch_9/refunds",
            status=201,
            payload={"id": "re_9", "status": "succeeded"},
        )
        assert (await adapter.capture(order)).approved
        assert (await adapter.void(order)).approved
        assert (await adapter.refund(order)).acquirer_reference == "re_9"


async def test_status_query_reads_the_stored_answer_for_our_key(adapter: SandboxAdapter) -> None:
    query = StatusQuery(Operation.SALE, "pay_1", "pr_key")
    with aioresponses() as mock:
        mock.get(
            f"{BASE}/v1/operations/pr_key",
            status=200,
            payload={"http_status": 201, "response": {"id": "ch_1", "status": "captured"}},
        )
        mock.get(f"{BASE}/v1/operations/pr_key", status=404, payload={})
        found = await adapter.status(query)
        missing = await adapter.status(query)
    assert found is not None
    assert found.approved
    assert missing is None
