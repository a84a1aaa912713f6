"""Failover follows the outcome taxonomy exactly, against faulting sandboxes.

NotProcessed moves on; OutcomeUnknown never does: it is resolved at the same
acquirer with the same key, or answered ``unknown`` and reconciled later.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from adapters.base import Operation, PaymentOrder
from adapters.credentials import AcquirerToken
from adapters.sandbox.adapter import SandboxAdapter
from adapters.sandbox.server import SandboxServer
from adapters.sandbox.settings import SandboxSettings
from router.http.keys import RUNTIME
from router.payments.models import CreatePayment
from router.payments.records import Attempt, PaymentRecord, now_ms
from router.payments.states import PaymentState
from router.store.ids import Ids
from router.store.memory import MemoryStore
from router.store.protocol import Claimed, ClaimRequest, Write
from tests.conftest import RouterFactory
from tests.helpers import AUTH, charges_by_reference, eventually, headers, make_config

Client = TestClient[Any, Any]
SALE = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}


@pytest.fixture
def sandboxes(two_sandboxes: tuple[SandboxServer, SandboxServer]) -> tuple[SandboxServer, ...]:
    return two_sandboxes


@pytest.fixture
async def client(router_factory: RouterFactory, sandboxes: tuple[SandboxServer, ...]) -> Client:
    a, b = sandboxes
    return await router_factory(make_config({"sandbox-a": a.url, "sandbox-b": b.url}))


async def _faults(client: Client, sandbox: SandboxServer, *rules: dict[str, Any]) -> None:
    resp = await client.session.put(f"{sandbox.url}/_sandbox/faults", json=list(rules))
    assert resp.status == 200, await resp.text()


async def _pay(client: Client, key: str, body: dict[str, Any] = SALE) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/payments", json=body, headers=headers(key))
    return resp.status, await resp.json(content_type=None)


async def _payment(client: Client, payment_id: str) -> dict[str, Any]:
    return dict(await (await client.get(f"/v1/payments/{payment_id}", headers=AUTH)).json())


def _charges(*sandboxes: SandboxServer) -> dict[str, int]:
    return charges_by_reference(*({"events": s.state.ledger} for s in sandboxes))


async def test_connection_refused_fails_over_to_the_next_acquirer(
    client: Client, sandboxes: tuple[SandboxServer, ...]
) -> None:
    a, b = sandboxes
    await a.stop_listening()
    status, body = await _pay(client, "k-1")
    assert (status, body["status"], body["acquirer"]) == (201, "captured", "sandbox-b")
    assert _charges(a, b) == {body["id"]: 1}


async def test_a_documented_not_processed_503_fails_over(
    client: Client, sandboxes: tuple[SandboxServer, ...]
) -> None:
    a, _b = sandboxes
    await _faults(client, a, {"mode": "unavailable", "count": 1})
    status, body = await _pay(client, "k-1")
    assert (status, body["acquirer"]) == (201, "sandbox-b")
    assert a.state.ledger == []


async def test_timeout_after_send_is_never_failed_over(
    client: Client, sandboxes: tuple[SandboxServer, ...]
) -> None:
    a, b = sandboxes
    await _faults(client, a, {"mode": "timeout_after_processing", "count": 1, "hang_s": 5})
    status, body = await _pay(client, "k-1")
    assert (status, body["status"], body["acquirer"]) == (201, "captured", "sandbox-a")
    assert b.state.requests_seen == 0
    assert _charges(a, b) == {body["id"]: 1}


@pytest.mark.parametrize("mode", ["reset_mid_response", "error_500", "garbled"])
async def test_an_ambiguous_answer_is_resolved_by_replaying_the_same_key_there(
    client: Client, sandboxes: tuple[SandboxServer, ...], mode: str
) -> None:
    a, b = sandboxes
    await _faults(client, a, {"mode": mode, "count": 1})
    status, body = await _pay(client, "k-1")
    assert (status, body["status"], body["acquirer"]) == (201, "captured", "sandbox-a")
    assert b.state.requests_seen == 0
    keys = {e["idempotency_key"] for e in a.state.ledger}
    assert len(keys) == 1
    assert _charges(a, b) == {body["id"]: 1}


async def test_an_unresolvable_outcome_is_unknown_then_reconciled_without_a_second_charge(
    client: Client, sandboxes: tuple[SandboxServer, ...]
) -> None:
    a, b = sandboxes
    await _faults(client, a, {"mode": "timeout_after_processing", "hang_s": 3, "applies_to": "all"})
    status, body = await _pay(client, "k-1")
    assert (status, body["status"], body["acquirer"]) == (202, "unknown", "sandbox-a")
    assert b.state.requests_seen == 0

    await _faults(client, a)  # the acquirer recovers
    got = await eventually(
        functools.partial(_payment, client, body["id"]),
        lambda p: p["status"] != "unknown",
        seconds=10,
        every=0.1,
    )
    assert got["status"] == "captured"

    status, again = await _pay(client, "k-1")  # the caller's retry gets the real answer
    assert (status, again["id"], again["status"]) == (201, body["id"], "captured")
    assert _charges(a, b) == {body["id"]: 1}


async def test_a_request_the_acquirer_never_processed_is_settled_failed_by_the_reconciler(
    router_factory: RouterFactory, sandboxes: tuple[SandboxServer, ...]
) -> None:
    """The connection is cut before sandbox-a acts: the router cannot tell, so it
    answers unknown and never tries sandbox-b.  Later, sandbox-a's authoritative
    "never received that key" (after the grace period) settles it as failed."""
    a, b = sandboxes
    config = make_config(
        {"sandbox-a": a.url, "sandbox-b": b.url}, reconciler={"not_found_grace_s": 0.3}
    )
    client = await router_factory(config)
    await _faults(client, a, {"mode": "drop"})
    status, body = await _pay(client, "k-1")
    assert (status, body["status"]) == (202, "unknown")
    assert b.state.requests_seen == 0
    got = await eventually(
        functools.partial(_payment, client, body["id"]),
        lambda p: p["status"] != "unknown",
        seconds=5,
    )
    assert (got["status"], got["failure_reason"]) == ("failed", "acquirer_confirms_not_processed")
    assert a.state.ledger == []

    await _faults(client, a)  # the caller retries later: processed once, at sandbox-a
    status, paid = await _pay(client, "k-1")
    assert (status, paid["id"], paid["status"], paid["acquirer"]) == (
        201,
        body["id"],
        "captured",
        "sandbox-a",
    )
    assert _charges(a, b) == {body["id"]: 1}


async def test_when_every_acquirer_is_down_nothing_is_charged_and_the_retry_succeeds(
    client: Client, sandboxes: tuple[SandboxServer, ...]
) -> None:
    a, b = sandboxes
    await a.stop_listening()
    await b.stop_listening()
    status, body = await _pay(client, "k-1")
    assert (status, body["code"]) == (503, "no_acquirer_available")
    assert len(body["attempts"]) == 2
    failed = await (await client.get(f"/v1/payments/{body['payment_id']}", headers=AUTH)).json()
    assert (failed["status"], failed["failure_reason"]) == ("failed", "no_acquirer_available")

    await b.resume_listening()
    status, paid = await _pay(client, "k-1")
    assert (status, paid["id"], paid["acquirer"]) == (201, body["payment_id"], "sandbox-b")
    assert _charges(a, b) == {paid["id"]: 1}


async def test_an_integration_error_is_502_and_never_failed_over(
    router_factory: RouterFactory, sandbox_factory: Any
) -> None:
    locked = await sandbox_factory("locked", api_key="expected-key")
    spare = await sandbox_factory("spare")
    client = await router_factory(make_config({"locked": locked.url, "spare": spare.url}))
    status, body = await _pay(client, "k-1")
    assert (status, body["code"]) == (502, "acquirer_integration_error")
    assert spare.state.requests_seen == 0


async def test_a_capture_whose_answer_was_lost_is_replayed_and_captured_once(
    client: Client, sandboxes: tuple[SandboxServer, ...]
) -> None:
    a, _ = sandboxes
    _status, auth = await _pay(client, "k-1", SALE | {"capture": False})
    await _faults(client, a, {"mode": "reset_mid_response", "count": 1})
    resp = await client.post(f"/v1/payments/{auth['id']}/capture", json={}, headers=headers("c-1"))
    assert resp.status == 200
    assert [e["kind"] for e in a.state.ledger] == ["authorization", "capture"]


async def test_a_dead_owners_open_attempt_is_resolved_at_its_acquirer_before_any_other(
    router_factory: RouterFactory, sandboxes: tuple[SandboxServer, ...]
) -> None:
    """An instance journaled an attempt at sandbox-b, sent it, and died.  The
    retry (after the lease) must find out what happened at b, not try a."""
    a, b = sandboxes
    store = MemoryStore()
    config = make_config({"sandbox-a": a.url, "sandbox-b": b.url})
    client = await router_factory(config, store=store)
    ids = client.app[RUNTIME].current.ids
    request = CreatePayment.model_validate(SALE)
    scope = Ids.scope("demo:test", "crash-1")
    pid = ids.payment_id("demo:test", "crash-1", ids.epoch(now_ms()))
    key = ids.acquirer_key(pid, Operation.SALE, "sandbox-b")
    payment = PaymentRecord(
        id=pid,
        tenant="demo:test",
        state=PaymentState.PENDING,
        amount=1299,
        currency="EUR",
        capture=True,
        attempts=[
            Attempt(acquirer="sandbox-b", acquirer_key=key, operation=Operation.SALE, started_ms=1)
        ],
        version=1,
    )
    claim = await store.claim(
        ClaimRequest(
            scope=scope,
            shard=Ids.shard_of_scope(scope),
            fingerprint=ids.fingerprint("POST", "/v1/payments", request.model_dump(mode="json")),
            owner="dead-owner",
            lease_ms=1,
            resource_id=pid,
            create=Write(payment, 0),
        )
    )
    assert isinstance(claim, Claimed)
    assert claim.created
    async with aiohttp.ClientSession() as session:  # the dead instance's request did arrive
        settings = SandboxSettings(base_url=b.url)
        sent = await SandboxAdapter("sandbox-b", settings, session, b.url).create(
            PaymentOrder(
                payment_id=pid,
                amount=1299,
                currency="EUR",
                credential=AcquirerToken("tok_visa"),
                capture=True,
                idempotency_key=key,
            )
        )
    assert sent.approved
    await asyncio.sleep(0.01)  # the 1 ms lease is over

    resp = await client.post("/v1/payments", json=SALE, headers=headers("crash-1"))
    body = await resp.json()
    assert (resp.status, body["id"], body["acquirer"]) == (201, pid, "sandbox-b")
    assert a.state.requests_seen == 0
    assert _charges(a, b) == {pid: 1}
