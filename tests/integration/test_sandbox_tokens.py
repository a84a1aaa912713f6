"""Every test token the README documents does what it says, seen through the
router with ONE sandbox acquirer (so no failover can hide the fault): the
answer, the requests on the acquirer's wire, and its ledger."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.sandbox.server import SandboxServer
from tests.conftest import RouterFactory, SandboxFactory
from tests.helpers import charges_by_reference, eventually, headers, make_config

#: token -> (status, payment status or problem code, requests the sandbox
#: received, charges in its ledger)
EXPECTED: dict[str, tuple[int, str, int, int]] = {
    # nothing processed: refused, and provably not charged
    "tok_fault_unavailable": (503, "no_acquirer_available", 1, 0),
    # the request's connection is cut and the listener closes for a second: the
    # router cannot know, so the payment is unknown until the reconciler asks
    # the sandbox (authoritative) and settles it failed (see the test below)
    "tok_fault_refuse_connections": (202, "unknown", 1, 0),
    # the connection cut before processing: ambiguous to the router, which
    # replays the same key there and gets it processed once
    "tok_fault_drop": (201, "captured", 2, 1),
    # slower than the router's read timeout: the replay under the same key wins
    "tok_fault_latency": (201, "captured", 2, 1),
    # processed, then the answer went wrong: resolved by a replay, charged once
    "tok_fault_error_500": (201, "captured", 2, 1),
    "tok_fault_garbled": (201, "captured", 2, 1),
    "tok_fault_reset_mid_response": (201, "captured", 2, 1),
    "tok_fault_timeout_after_processing": (201, "captured", 2, 1),
    # the issuer says no
    "tok_fault_decline": (201, "declined", 1, 0),
    "tok_decline_insufficient_funds": (201, "declined", 1, 0),
    "tok_pending": (202, "pending", 1, 0),
    "tok_visa": (201, "captured", 1, 1),
}


async def _one_sandbox(
    router_factory: RouterFactory, sandbox_factory: SandboxFactory
) -> tuple[Any, SandboxServer]:
    sandbox = await sandbox_factory("only")
    config = make_config({"only": sandbox.url}, reconciler={"not_found_grace_s": 0})
    # the read timeout (1 s) is shorter than tok_fault_latency's 2 s
    return await router_factory(config), sandbox


def _charges(sandbox: SandboxServer) -> int:
    return sum(charges_by_reference({"events": sandbox.state.ledger}).values())


@pytest.mark.parametrize("token", sorted(EXPECTED))
async def test_each_documented_test_token_does_what_the_readme_says(
    router_factory: RouterFactory, sandbox_factory: SandboxFactory, token: str
) -> None:
    client, sandbox = await _one_sandbox(router_factory, sandbox_factory)
    resp = await client.post(
        "/v1/payments",
        json={"amount": 700, "currency": "EUR", "payment_method": token},
        headers=headers(f"tok-{token}"),
    )
    body = await resp.json(content_type=None)
    status, outcome, requests, charges = EXPECTED[token]
    creates = [r for r in sandbox.state.wire if r.path == "/v1/charges"]
    assert (resp.status, body["code"] if "code" in body else body["status"]) == (status, outcome)
    assert (len(creates), _charges(sandbox)) == (requests, charges)
    assert len({dict(r.headers)["Idempotency-Key"] for r in creates}) == 1  # always one key
    if token == "tok_decline_insufficient_funds":
        assert body["decline"] == {
            "code": "insufficient_funds",
            "raw_code": "insufficient_funds",
            "category": "soft",
        }


async def test_a_payment_cut_by_refused_connections_is_settled_failed_once_the_sandbox_is_back(
    router_factory: RouterFactory, sandbox_factory: SandboxFactory
) -> None:
    client, sandbox = await _one_sandbox(router_factory, sandbox_factory)
    resp = await client.post(
        "/v1/payments",
        json={"amount": 700, "currency": "EUR", "payment_method": "tok_fault_refuse_connections"},
        headers=headers("refused-1"),
    )
    payment_id = (await resp.json())["id"]

    async def status() -> str:
        got = await client.get(f"/v1/payments/{payment_id}", headers=headers("r"))
        return str((await got.json())["status"])

    assert await eventually(status, lambda s: s == "failed", seconds=40) == "failed"
    assert _charges(sandbox) == 0
