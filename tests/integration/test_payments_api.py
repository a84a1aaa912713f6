"""The uniform payment API, end to end over HTTP against sandbox acquirers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.sandbox.faults import FaultMode, FaultRule
from adapters.sandbox.server import SandboxServer
from tests.conftest import RouterFactory
from tests.helpers import (
    AUTH,
    OTHER_AUTH,
    charges_by_reference,
    eventually,
    headers,
    make_config,
    until,
)

Client = TestClient[Any, Any]
SALE = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}
AUTH_ONLY = SALE | {"capture": False}


@pytest.fixture
async def client(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> Client:
    a, b = two_sandboxes
    return await router_factory(make_config({"sandbox-a": a.url, "sandbox-b": b.url}))


async def _post(
    client: Client,
    path: str,
    key: str,
    body: dict[str, Any] | None = None,
    auth: dict[str, str] = AUTH,
) -> tuple[int, dict[str, Any], Any]:
    resp = await client.post(
        path, json=body if body is not None else {}, headers=headers(key, auth)
    )
    return resp.status, await resp.json(content_type=None), resp.headers


async def _authorized(client: Client, key: str = "auth-1", amount: int = 5000) -> str:
    status, body, _ = await _post(client, "/v1/payments", key, AUTH_ONLY | {"amount": amount})
    assert (status, body["status"]) == (201, "authorized")
    return str(body["id"])


# ------------------------------------------------------------------ lifecycle


async def test_a_sale_is_captured_at_the_first_acquirer(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    status, body, hdrs = await _post(client, "/v1/payments", "sale-1", SALE)
    assert status == 201
    assert body["status"] == "captured"
    assert body["captured_amount"] == 1299
    assert body["amount_decimal"] == "12.99"
    assert body["acquirer"] == "sandbox-a"
    assert hdrs["Location"] == f"/v1/payments/{body['id']}"
    got = await client.get(f"/v1/payments/{body['id']}", headers=AUTH)
    assert (await got.json())["status"] == "captured"
    assert two_sandboxes[0].state.charges[body["acquirer_reference"]].status == "captured"


async def test_authorize_then_partial_capture_then_partial_and_full_refund(client: Client) -> None:
    pid = await _authorized(client)
    status, body, _ = await _post(client, f"/v1/payments/{pid}/capture", "cap-1", {"amount": 4000})
    assert (status, body["status"], body["captured_amount"]) == (200, "captured", 4000)

    status, refund, _ = await _post(
        client, f"/v1/payments/{pid}/refunds", "ref-1", {"amount": 1500}
    )
    assert (status, refund["status"], refund["amount"]) == (201, "succeeded", 1500)
    payment = await (await client.get(f"/v1/payments/{pid}", headers=AUTH)).json()
    assert (payment["status"], payment["refunded_amount"]) == ("partially_refunded", 1500)

    status, rest, _ = await _post(client, f"/v1/payments/{pid}/refunds", "ref-2", {})
    assert (status, rest["amount"]) == (201, 2500)  # omitted amount = what is left
    payment = await (await client.get(f"/v1/payments/{pid}", headers=AUTH)).json()
    assert (payment["status"], payment["refunded_amount"]) == ("refunded", 4000)
    assert payment["refunds"] == [refund["id"], rest["id"]]
    got = await client.get(f"/v1/refunds/{refund['id']}", headers=AUTH)
    assert (await got.json())["payment_id"] == pid


async def test_void_releases_an_authorization(client: Client) -> None:
    pid = await _authorized(client)
    status, body, _ = await _post(client, f"/v1/payments/{pid}/void", "void-1")
    assert (status, body["status"]) == (200, "voided")


async def test_capture_after_void_is_refused_with_a_state_code(client: Client) -> None:
    pid = await _authorized(client)
    await _post(client, f"/v1/payments/{pid}/void", "void-1")
    status, body, _ = await _post(client, f"/v1/payments/{pid}/capture", "cap-1")
    assert status == 409
    assert body["code"] == "capture_not_allowed"
    assert body["payment_status"] == "voided"


async def test_capture_beyond_the_authorization_is_refused(client: Client) -> None:
    pid = await _authorized(client, amount=1000)
    status, body, _ = await _post(client, f"/v1/payments/{pid}/capture", "cap-1", {"amount": 1001})
    assert (status, body["code"]) == (422, "capture_exceeds_authorization")


async def test_refund_beyond_the_captured_amount_is_refused(client: Client) -> None:
    _, sale, _ = await _post(client, "/v1/payments", "sale-1", SALE)
    status, body, _ = await _post(
        client, f"/v1/payments/{sale['id']}/refunds", "r", {"amount": 1300}
    )
    assert (status, body["code"], body["available"]) == (422, "refund_exceeds_available", 1299)


async def test_concurrent_refunds_never_exceed_the_captured_amount(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    _, sale, _ = await _post(client, "/v1/payments", "sale-1", SALE | {"amount": 1000})
    results = await asyncio.gather(
        *(
            _post(client, f"/v1/payments/{sale['id']}/refunds", f"r-{i}", {"amount": 300})
            for i in range(6)
        )
    )
    succeeded = [r for r in results if r[0] == 201]
    assert len(succeeded) == 3
    assert {r[1]["code"] for r in results if r[0] != 201} == {"refund_exceeds_available"}
    refunded = sum(e["amount"] for e in two_sandboxes[0].state.ledger if e["kind"] == "refund")
    assert refunded == 900


async def test_a_decline_is_answered_and_not_failed_over(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    status, body, _ = await _post(
        client, "/v1/payments", "d-1", SALE | {"payment_method": "tok_decline_insufficient_funds"}
    )
    assert (status, body["status"], body["decline_code"]) == (201, "declined", "insufficient_funds")
    assert two_sandboxes[1].state.requests_seen == 0


async def test_a_pending_3ds_payment_is_resolved_by_the_reconciler(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    status, body, _ = await _post(
        client, "/v1/payments", "p-1", SALE | {"payment_method": "tok_pending"}
    )
    assert (status, body["status"]) == (202, "pending")
    assert body["next_action"]["url"].endswith(body["acquirer_reference"])
    sandbox = two_sandboxes[0]
    settle = await client.session.post(
        f"{sandbox.url}/_sandbox/charges/{body['acquirer_reference']}/settle", json={}
    )
    assert settle.status == 200

    async def payment() -> dict[str, Any]:
        return dict(await (await client.get(f"/v1/payments/{body['id']}", headers=AUTH)).json())

    got = await eventually(payment, lambda p: p["status"] != "pending", seconds=5, every=0.1)
    assert got["status"] == "captured"


# --------------------------------------------------------------- idempotency


async def test_a_retry_with_the_same_key_replays_without_charging_again(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    first = await _post(client, "/v1/payments", "k-1", SALE)
    second = await _post(client, "/v1/payments", "k-1", SALE)
    assert second[0] == first[0] == 201
    assert second[1] == first[1]
    assert second[2]["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first[2]
    assert charges_by_reference(*(await _ledgers(client, two_sandboxes))) == {first[1]["id"]: 1}


async def test_the_same_key_with_another_payload_is_422(client: Client) -> None:
    await _post(client, "/v1/payments", "k-1", SALE)
    status, body, _ = await _post(client, "/v1/payments", "k-1", SALE | {"amount": 1300})
    assert (status, body["code"]) == (422, "idempotency_key_reused")


async def test_the_same_key_still_in_flight_is_409_with_retry_after(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    slow = {"mode": "latency", "latency_ms": 600, "count": 1}
    await client.session.put(f"{two_sandboxes[0].url}/_sandbox/faults", json=[slow])
    first = asyncio.create_task(_post(client, "/v1/payments", "k-1", SALE))
    assert await until(lambda: two_sandboxes[0].state.requests_seen == 1, seconds=5)
    status, body, hdrs = await _post(client, "/v1/payments", "k-1", SALE)
    assert (status, body["code"]) == (409, "idempotency_request_in_flight")
    assert int(hdrs["Retry-After"]) >= 1
    assert (await first)[0] == 201


async def test_stored_errors_are_replayed_too(client: Client) -> None:
    pid = await _authorized(client)
    await _post(client, f"/v1/payments/{pid}/void", "void-1")
    first = await _post(client, f"/v1/payments/{pid}/capture", "cap-1")
    again = await _post(client, f"/v1/payments/{pid}/capture", "cap-1")
    assert first[0] == again[0] == 409
    assert again[2]["Idempotent-Replayed"] == "true"
    assert again[2]["Content-Type"].startswith("application/problem+json")


async def test_keys_are_scoped_per_caller(client: Client) -> None:
    mine = await _post(client, "/v1/payments", "shared-key", SALE)
    theirs = await _post(client, "/v1/payments", "shared-key", SALE | {"amount": 5}, OTHER_AUTH)
    assert mine[0] == theirs[0] == 201
    assert mine[1]["id"] != theirs[1]["id"]


# ------------------------------------------------------------------ refusals


async def test_a_missing_idempotency_key_is_400(client: Client) -> None:
    resp = await client.post("/v1/payments", json=SALE, headers=AUTH)
    body = await resp.json(content_type=None)
    assert (resp.status, body["code"]) == (400, "idempotency_key_missing")
    assert resp.headers["Content-Type"].startswith("application/problem+json")


async def test_a_raw_card_number_is_refused_and_never_echoed(client: Client) -> None:
    resp = await client.post(
        "/v1/payments",
        json=SALE | {"metadata": {"note": "4111 1111 1111 1111"}},
        headers=headers("pan-1"),
    )
    text = await resp.text()
    assert resp.status == 400
    assert "raw_card_number_refused" in text
    assert "4111" not in text


async def test_validation_errors_name_each_field_without_echoing_input(client: Client) -> None:
    status, body, _ = await _post(
        client,
        "/v1/payments",
        "bad-1",
        {"amount": "12.99", "currency": "EUR", "payment_method": "tok_visa", "colour": "blue"},
    )
    assert (status, body["code"]) == (400, "invalid_request")
    assert {e["field"] for e in body["errors"]} == {"amount", "colour"}
    assert "12.99" not in str(body)


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"NaN", b'"text"'])
async def test_malformed_json_is_400(client: Client, raw: bytes) -> None:
    resp = await client.post("/v1/payments", data=raw, headers=headers("j-1"))
    assert resp.status == 400


async def test_another_callers_payment_is_not_found(client: Client) -> None:
    pid = await _authorized(client)
    resp = await client.get(f"/v1/payments/{pid}", headers=OTHER_AUTH)
    assert resp.status == 404
    status, _, _ = await _post(client, f"/v1/payments/{pid}/capture", "x", None, OTHER_AUTH)
    assert status == 404


async def test_requests_without_a_valid_api_key_are_401(client: Client) -> None:
    resp = await client.get("/v1/payments/pay_000000000000000000000000")
    assert resp.status == 401
    resp = await client.get(
        "/v1/payments/pay_000000000000000000000000", headers={"Authorization": "Bearer nope"}
    )
    assert (resp.status, (await resp.json(content_type=None))["code"]) == (401, "invalid_api_key")


async def test_unknown_routes_and_methods_answer_problem_json(client: Client) -> None:
    resp = await client.get("/v1/nothing")
    assert resp.status == 404
    assert (await resp.json(content_type=None))["code"] == "not_found"
    resp = await client.delete("/v1/payments")
    assert resp.status == 405


async def test_the_router_publishes_its_openapi_document(client: Client) -> None:
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/payments", "/v1/payments/{payment_id}/capture", "/v1/refunds/{refund_id}"} <= set(
        doc["paths"]
    )
    create = doc["components"]["schemas"]["CreatePayment"]
    assert create["additionalProperties"] is False
    assert "amount" in create["required"]


async def _ledgers(client: Client, sandboxes: tuple[SandboxServer, ...]) -> list[dict[str, Any]]:
    out = []
    for sandbox in sandboxes:
        out.append(await (await client.session.get(f"{sandbox.url}/_sandbox/ledger")).json())
    return out


async def test_a_request_outliving_its_lease_keeps_it_while_alive(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    """The lease is 1 s, the acquirer takes 2.5 s: the heartbeat keeps the
    record ours, so a duplicate arriving after the first lease ran out still
    waits (409)."""
    a, b = two_sandboxes
    config = make_config(
        {"sandbox-a": a.url, "sandbox-b": b.url}, payments={"lease_s": 1, "deadline_s": 10}
    )
    acquirers = {
        n: acq.model_copy(update={"timeouts": acq.timeouts.model_copy(update={"read_s": 5})})
        for n, acq in config.acquirers.items()
    }
    client = await router_factory(config.model_copy(update={"acquirers": acquirers}))
    a.state.faults.replace([FaultRule(mode=FaultMode.LATENCY, latency_ms=2500, count=1)])
    claimed_at = time.time()
    first = asyncio.create_task(_post(client, "/v1/payments", "slow-1", SALE))
    assert await until(lambda: a.state.requests_seen == 1, seconds=5)
    assert await until(lambda: time.time() > claimed_at + 1.2, seconds=5)  # lease 1 s is over
    status, body, _ = await _post(client, "/v1/payments", "slow-1", SALE)
    assert (status, body["code"]) == (409, "idempotency_request_in_flight")
    status, paid, _ = await first
    assert (status, paid["status"]) == (201, "captured")
    assert charges_by_reference({"events": a.state.ledger}, {"events": b.state.ledger}) == {
        paid["id"]: 1
    }


async def test_access_lines_carry_the_payment_acquirer_problem_replay_and_worker(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="payrouter.access")
    _, body, _ = await _post(client, "/v1/payments", "access-1", SALE)
    await _post(client, "/v1/payments", "access-1", SALE)  # a replay
    await _post(client, "/v1/payments", "access-1", SALE | {"amount": 1})  # key reused
    lines = [r.fields for r in caplog.records if r.name == "payrouter.access"]  # type: ignore[attr-defined]
    common = {"method": "POST", "route": "/v1/payments", "worker": "0"}
    assert [
        {
            k: line.get(k)
            for k in (*common, "status", "payment_id", "acquirer", "replayed", "problem")
        }
        for line in lines
    ] == [
        {
            **common,
            "status": 201,
            "payment_id": body["id"],
            "acquirer": "sandbox-a",
            "replayed": False,
            "problem": None,
        },
        {
            **common,
            "status": 201,
            "payment_id": body["id"],
            "acquirer": "sandbox-a",
            "replayed": True,
            "problem": None,
        },
        {
            **common,
            "status": 422,
            "payment_id": None,
            "acquirer": None,
            "replayed": False,
            "problem": "idempotency_key_reused",
        },
    ]
