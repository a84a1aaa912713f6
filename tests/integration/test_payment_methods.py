"""Payment methods that fail over, end to end on loopback: a sandbox vault
forwarding cards, network tokens, acquirer-scoped tokens, card-on-file
payments across acquirers, and 3-D Secure completed through the sandbox's
challenge page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from adapters.sandbox.server import SandboxServer
from adapters.sandbox.vault import SandboxVault
from tests.conftest import RouterFactory
from tests.helpers import charges_by_reference, eventually, headers, make_config, secret

Client = TestClient[Any, Any]
VISA = "4242424242424242"
NETWORK_TOKEN: dict[str, Any] = {
    "type": "network_token",
    "number": "4895370012003478",
    "expiry_month": 12,
    "expiry_year": 2031,
    "scheme": "visa",
    "cryptogram": "AgAAAAAABk4DWZ4C28yUQAAAAAA=",
    "eci": "05",
}


@pytest.fixture
async def vault() -> AsyncIterator[SandboxVault]:
    server = SandboxVault()
    await server.start()
    yield server
    await server.close()


def _config(a: SandboxServer, b: SandboxServer, vault: SandboxVault, **sections: Any) -> Any:
    return make_config(
        {"sandbox-a": a.url, "sandbox-b": b.url},
        vaults={
            "cards": {
                "kind": "stripe_forwarding",
                "base_url": vault.url,
                "api_key": secret("VAULT_KEY", "vk_test_0123"),
            },
            "proxy": {"kind": "proxy", "proxy_url": vault.url},
        },
        **sections,
    )


@pytest.fixture
async def client(
    router_factory: RouterFactory,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
    vault: SandboxVault,
) -> Client:
    return await router_factory(_config(*two_sandboxes, vault))


async def _pay(client: Client, key: str, **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        "/v1/payments", json={"amount": 1500, "currency": "EUR", **body}, headers=headers(key)
    )
    return resp.status, await resp.json(content_type=None)


def _charges(server: SandboxServer) -> dict[str, int]:
    return charges_by_reference({"events": server.state.ledger})


def _creates(server: SandboxServer) -> list[dict[str, Any]]:
    """The create requests the acquirer received, as it received them."""
    return [
        orjson.loads(r.body)
        for r in server.state.wire
        if r.method == "POST" and r.path == "/v1/charges"
    ]


# ------------------------------------------------------------ vault forwarding


@pytest.mark.parametrize("vault_name", ["cards", "proxy"])
async def test_a_vault_card_fails_over_with_the_card_filled_in_outside_the_router(
    client: Client,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
    vault: SandboxVault,
    vault_name: str,
) -> None:
    a, b = two_sandboxes
    await a.stop_listening()
    status, body = await _pay(
        client,
        f"vault-{vault_name}",
        payment_method={"type": "vault", "vault": vault_name, "token": "vault_visa"},
    )
    assert (status, body["status"], body["acquirer"]) == (201, "captured", "sandbox-b")
    assert _charges(b) == {body["id"]: 1}
    # the acquirer got the card, from the vault; the router's records never hold it
    assert [c["card"]["number"] for c in _creates(b)] == [VISA]
    assert [url for url, _ in vault.state.forwarded] == [f"{b.url}/v1/charges"]
    assert body["payment_method"] == {
        "type": "vault",
        "hint": f"{vault_name}:vault_…",
        "acquirers": [],
    }
    payment = await client.get(f"/v1/payments/{body['id']}", headers=headers("r"))
    assert VISA not in await payment.text()


async def test_a_token_the_vault_does_not_hold_is_a_decline_never_an_outage(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    a, b = two_sandboxes
    unknown = {"type": "vault", "vault": "cards", "token": "vault_nobody"}
    for i in range(8):  # more than the breaker's threshold
        status, body = await _pay(client, f"unknown-{i}", payment_method=unknown)
        assert (status, body["status"], body["decline"]["code"]) == (
            201,
            "declined",
            "invalid_credential",
        )
    assert _charges(a) == _charges(b) == {}
    status, body = await _pay(client, "after", payment_method="tok_visa")
    assert (status, body["status"], body["acquirer"]) == (201, "captured", "sandbox-a")


# ------------------------------------------------------------ network tokens


async def test_a_network_token_fails_over_to_the_second_acquirer(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    a, b = two_sandboxes
    await a.stop_listening()
    status, body = await _pay(client, "nt-1", payment_method=NETWORK_TOKEN)
    assert (status, body["status"], body["acquirer"]) == (201, "captured", "sandbox-b")
    assert _charges(b) == {body["id"]: 1}
    assert [c["network_token"]["number"] for c in _creates(b)] == [NETWORK_TOKEN["number"]]
    assert body["payment_method"] == {
        "type": "network_token",
        "hint": "visa …3478",
        "acquirers": [],
    }
    payment = await client.get(f"/v1/payments/{body['id']}", headers=headers("r"))
    assert NETWORK_TOKEN["number"] not in await payment.text()


# ------------------------------------------------------------ acquirer tokens


async def test_an_acquirer_token_never_reaches_another_acquirer(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    a, b = two_sandboxes
    await a.stop_listening()
    only_a = {"type": "acquirer_tokens", "tokens": {"sandbox-a": "tok_issued_by_a"}}
    status, body = await _pay(client, "scoped-1", payment_method=only_a)
    assert (status, body["code"]) == (503, "no_acquirer_available")
    assert _creates(b) == []

    both = {"type": "acquirer_tokens", "tokens": {"sandbox-a": "tok_a_1", "sandbox-b": "tok_b_1"}}
    status, body = await _pay(client, "scoped-2", payment_method=both)
    assert (status, body["status"], body["acquirer"]) == (201, "captured", "sandbox-b")
    assert [c["payment_method"] for c in _creates(b)] == ["tok_b_1"]


async def test_a_hint_to_an_acquirer_the_credential_cannot_reach_says_why(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    only_b = {"type": "acquirer_tokens", "tokens": {"sandbox-b": "tok_b_1"}}
    status, body = await _pay(
        client, "hint-1", payment_method=only_b, routing={"acquirer": "sandbox-a"}
    )
    assert (status, body["code"]) == (422, "acquirer_not_eligible")
    assert "sandbox-a" in body["detail"]
    assert "no token" in body["detail"]
    assert [_creates(s) for s in two_sandboxes] == [[], []]


# ------------------------------------------------------------ card on file


async def test_a_merchant_initiated_payment_at_a_second_acquirer_carries_the_first_ntid(
    client: Client, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    a, b = two_sandboxes
    card = {"type": "vault", "vault": "cards", "token": "vault_mastercard"}
    status, first = await _pay(
        client,
        "cof-1",
        payment_method=card,
        shopper_reference="shopper-42",
        stored_credential={"initiator": "customer", "usage": "first", "sequence": "recurring"},
    )
    assert (status, first["status"], first["acquirer"]) == (201, "captured", "sandbox-a")
    ntid = first["network_transaction_id"]
    assert ntid.startswith("ntid")

    await a.stop_listening()
    status, later = await _pay(
        client,
        "cof-2",
        payment_method=card,
        shopper_reference="shopper-42",
        stored_credential={
            "initiator": "merchant",
            "usage": "subsequent",
            "sequence": "recurring",
            "initial_payment_id": first["id"],
        },
    )
    assert (status, later["status"], later["acquirer"]) == (201, "captured", "sandbox-b")
    (sent,) = _creates(b)
    assert sent["stored_credential"] == {
        "initiator": "merchant",
        "usage": "subsequent",
        "sequence": "recurring",
        "network_transaction_id": ntid,
    }


async def test_a_merchant_initiated_payment_without_the_scheme_id_is_refused_by_the_issuer(
    client: Client,
) -> None:
    card = {"type": "vault", "vault": "cards", "token": "vault_visa"}
    status, body = await _pay(
        client,
        "cof-3",
        payment_method=card,
        stored_credential={"initiator": "merchant", "usage": "subsequent"},
    )
    assert (status, body["status"], body["decline"]["code"]) == (
        201,
        "declined",
        "authentication_required",
    )


# ------------------------------------------------------------ 3-D Secure


async def _challenge(client: Client, body: dict[str, Any], answer: str) -> str:
    """The shopper on the sandbox bank's page: where it sends them back."""
    action = body["next_action"]
    assert (action["type"], action["method"]) == ("redirect", "GET")
    page = await client.session.get(action["url"])
    assert page.status == 200
    assert "Approve" in await page.text()
    back = await client.session.post(action["url"], data={"result": answer}, allow_redirects=False)
    assert back.status == 303
    return str(back.headers["Location"])


@pytest.mark.parametrize(
    ("answer", "status", "expected"),
    [("approve", 200, "captured"), ("deny", 200, "declined")],
)
async def test_three_d_secure_completes_through_the_challenge_page(
    router_factory: RouterFactory,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
    vault: SandboxVault,
    answer: str,
    status: int,
    expected: str,
) -> None:
    # the reconciler far off: only the authenticate call can resolve the payment here
    client = await router_factory(
        _config(*two_sandboxes, vault, reconciler={"interval_s": 3600, "first_check_s": 3600})
    )
    code, body = await _pay(
        client,
        f"3ds-{answer}",
        payment_method={"type": "vault", "vault": "cards", "token": "vault_3ds"},
        return_url="https://shop.example/back?order=7",
    )
    assert (code, body["status"], body["acquirer"]) == (202, "pending", "sandbox-a")
    assert body["acquirer_reference"].startswith("ch_")
    back = await _challenge(client, body, answer)
    assert back == f"https://shop.example/back?order=7&charge={body['acquirer_reference']}"

    path = f"/v1/payments/{body['id']}/authenticate"
    done = await client.post(path, json={"details": {}}, headers=headers("auth"))
    result = await done.json(content_type=None)
    assert (done.status, result["status"], result["next_action"]) == (status, expected, None)
    if expected == "declined":
        assert result["decline"]["code"] == "authentication_failed"
    again = await client.post(path, json={}, headers=headers("auth-again"))
    assert (again.status, (await again.json())["status"]) == (200, expected)


async def test_a_payment_waiting_for_the_shopper_is_resolved_by_the_reconciler_too(
    client: Client,
) -> None:
    code, body = await _pay(
        client, "3ds-rec", payment_method="tok_pending", return_url="https://shop.example/r"
    )
    assert (code, body["status"]) == (202, "pending")
    await _challenge(client, body, "approve")

    async def status() -> str:
        resp = await client.get(f"/v1/payments/{body['id']}", headers=headers("r"))
        return str((await resp.json())["status"])

    assert await eventually(status, lambda s: s == "captured", seconds=10) == "captured"


async def test_a_payment_the_shopper_abandons_is_given_up_after_the_window(
    router_factory: RouterFactory,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
    vault: SandboxVault,
) -> None:
    a, _ = two_sandboxes
    client = await router_factory(
        _config(*two_sandboxes, vault, reconciler={"pending_expiry_s": 1})
    )
    code, body = await _pay(client, "3ds-gone", payment_method="tok_pending")
    assert (code, body["status"]) == (202, "pending")

    async def payment() -> dict[str, Any]:
        resp = await client.get(f"/v1/payments/{body['id']}", headers=headers("r"))
        return dict(await resp.json())

    final = await eventually(payment, lambda p: p["status"] != "pending", seconds=15)
    assert (final["status"], final["decline"]["code"]) == ("declined", "authentication_expired")
    assert a.state.charges[body["acquirer_reference"]].status == "declined"
    assert _charges(a) == {}
