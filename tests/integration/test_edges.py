"""The zero-trust edge: scoped keys, test/live separation, input limits, request
ids, logs without card data, metrics, and TLS both ways."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
import yaml
from aiohttp.test_utils import TestClient

from adapters.sandbox.server import SandboxServer
from router.config import Config
from router.telemetry.logs import JsonFormatter
from tests.conftest import RouterFactory
from tests.helpers import AUTH, DEMO_KEY, headers, make_config, sha, spawn_router
from tests.procs.net import free_port

Client = TestClient[Any, Any]
SALE = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}
ROOT = Path(__file__).resolve().parents[2]


def _keys(**keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": [{"sha256": sha(name), **spec} for name, spec in keys.items()]}


@pytest.fixture
async def client(router_factory: RouterFactory, sandbox_factory: Any) -> Client:
    sandbox = await sandbox_factory("sandbox-a")
    config = make_config(
        {"sandbox-a": sandbox.url},
        callers={
            "shop": _keys(
                sk_read={"scopes": ["payments:read"]},
                sk_pay={"scopes": ["payments:write", "payments:read"]},
                sk_ops={"scopes": ["admin"]},
            ),
        },
    )
    return await router_factory(config)


async def test_each_route_requires_its_scope(client: Client) -> None:
    read = {"Authorization": "Bearer sk_read"}
    pay = {"Authorization": "Bearer sk_pay"}
    resp = await client.post("/v1/payments", json=SALE, headers={**read, "Idempotency-Key": "a"})
    body = await resp.json(content_type=None)
    assert (resp.status, body["code"], body["required_scope"]) == (
        403,
        "insufficient_scope",
        "payments:write",
    )
    resp = await client.post("/v1/payments", json=SALE, headers={**pay, "Idempotency-Key": "b"})
    pid = (await resp.json())["id"]
    assert (await client.get(f"/v1/payments/{pid}", headers=read)).status == 200
    refund = await client.post(
        f"/v1/payments/{pid}/refunds", json={}, headers={**pay, "Idempotency-Key": "c"}
    )
    assert refund.status == 403  # no refunds:write


async def test_an_admin_scoped_key_opens_the_admin_api_and_nothing_else(client: Client) -> None:
    ops = {"Authorization": "Bearer sk_ops"}
    assert (await client.get("/admin/acquirers", headers=ops)).status == 200
    resp = await client.post("/v1/payments", json=SALE, headers={**ops, "Idempotency-Key": "a"})
    assert resp.status == 403
    assert (
        await client.get("/admin/acquirers", headers={"Authorization": "Bearer sk_pay"})
    ).status == 403


async def test_a_test_key_reaches_only_test_acquirers_and_a_live_key_only_live_ones(
    router_factory: RouterFactory,
    sandbox_factory: Any,
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    data = make_config({"sandbox-a": sandbox.url}).model_dump(mode="json")
    data["acquirers"]["stripe-live"] = {
        "kind": "stripe",
        "base_url": f"https://127.0.0.1:{free_port()}",
        "test_mode": False,
        "api_key": {"env": "STRIPE_LIVE_KEY"},
    }
    data["routing"]["default"] = ["stripe-live", "sandbox-a"]
    data["acquirers"]["stripe-live"]["api_key"]["value"] = "sk_live_x_0123"
    # a live config: no demo keys, metrics not public beside the API
    data["callers"] = {"shop": _keys(sk_test_shop={}, sk_live_shop={"mode": "live"})}
    data["server"]["metrics"] = {"api_key_sha256": [sha("metrics-reader-key")]}
    client = await router_factory(Config.model_validate(data), background=False)
    test_key = {"Authorization": "Bearer sk_test_shop"}
    live_key = {"Authorization": "Bearer sk_live_shop"}

    resp = await client.post(
        "/v1/payments", json=SALE, headers={**test_key, "Idempotency-Key": "k"}
    )
    paid = await resp.json()
    assert (resp.status, paid["acquirer"], paid["livemode"]) == (201, "sandbox-a", False)

    seen = sandbox.state.requests_seen
    both = {
        **SALE,
        "payment_method": {
            "type": "acquirer_tokens",
            "tokens": {"stripe": "pm_card_visa", "sandbox": "tok_visa"},
        },
    }
    resp = await client.post(
        "/v1/payments", json=both, headers={**live_key, "Idempotency-Key": "k"}
    )
    body = await resp.json(content_type=None)
    assert (resp.status, body["code"]) == (503, "no_acquirer_available")
    assert [a.split(":")[0] for a in body["attempts"]] == ["stripe-live"]
    assert sandbox.state.requests_seen == seen  # a live key never reaches the sandbox
    # the same idempotency key in the other mode is a different request, and the
    # test payment is invisible to the live key
    assert (await client.get(f"/v1/payments/{paid['id']}", headers=live_key)).status == 404


async def test_a_body_over_the_limit_is_413_problem_json(client: Client) -> None:
    huge = {**SALE, "metadata": {"note": "x" * 400}, "merchant_reference": "r"}
    resp = await client.post(
        "/v1/payments",
        data=b'{"a":"' + b"x" * 70_000 + b'"}',
        headers=headers("big", {"Authorization": "Bearer sk_pay"}),
    )
    assert resp.status == 413
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert huge  # a normal body is far below the limit


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (
            b'{"amount": 1, "amount": 1000000, "currency": "EUR", "payment_method": "tok_visa"}',
            "duplicate_json_key",
        ),
        (b'{"amount": NaN, "currency": "EUR", "payment_method": "tok_visa"}', "invalid_json"),
        (b'{"amount": Infinity}', "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b"[" * 100_000, "invalid_json"),
    ],
)
async def test_ambiguous_or_broken_json_is_refused(client: Client, raw: bytes, code: str) -> None:
    resp = await client.post(
        "/v1/payments", data=raw, headers=headers("j", {"Authorization": "Bearer sk_pay"})
    )
    body = await resp.json(content_type=None)
    assert resp.status in (400, 413)
    if resp.status == 400:
        assert body["code"] == code


async def test_long_paths_and_huge_headers_get_problem_json(client: Client) -> None:
    resp = await client.get("/v1/payments/" + "a" * 5000, headers=AUTH)
    assert (resp.status, (await resp.json(content_type=None))["code"]) == (414, "uri_too_long")
    resp = await client.get("/healthz", headers={"X-Junk": "y" * 5000})
    assert (resp.status, (await resp.json(content_type=None))["code"]) == (431, "headers_too_large")


async def test_the_request_id_is_echoed_generated_and_sent_to_the_acquirer(
    router_factory: RouterFactory,
    sandbox_factory: Any,
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(make_config({"sandbox-a": sandbox.url}))
    resp = await client.post(
        "/v1/payments", json=SALE, headers={**headers("rid"), "X-Request-Id": "trace-42"}
    )
    assert resp.headers["X-Request-Id"] == "trace-42"
    assert sandbox.state.last_request_id == "trace-42"
    minted = (await client.get("/healthz")).headers["X-Request-Id"]
    assert minted.startswith("req_")


async def test_a_card_number_never_reaches_the_logs(
    router_factory: RouterFactory,
    sandbox_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(make_config({"sandbox-a": sandbox.url}))
    caplog.set_level(logging.DEBUG)
    await client.post(
        "/v1/payments", headers=headers("pan"), json={**SALE, "payment_method": "4111111111111111"}
    )
    await client.post("/v1/payments", headers=headers("ok"), json=SALE)
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert any('"route":"/v1/payments"' in line and '"request_id"' in line for line in lines)
    assert not any("4111111111111111" in r.getMessage() for r in caplog.records)
    assert not any("4111111111111111" in line for line in lines)


async def test_metrics_cover_requests_outcomes_breakers_and_config(
    router_factory: RouterFactory,
    sandbox_factory: Any,
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(make_config({"sandbox-a": sandbox.url}))
    await client.post("/v1/payments", json=SALE, headers=headers("m1"))
    await client.post("/v1/payments", json=SALE, headers=headers("m1"))  # a replay
    text = await (await client.get("/metrics")).text()
    assert (
        'payrouter_http_requests_total{method="POST",route="/v1/payments",status="201"} 2.0' in text
    )
    assert (
        'payrouter_acquirer_outcomes_total{acquirer="sandbox-a",operation="sale",'
        'outcome="approved"} 1.0'
    ) in text
    assert 'payrouter_idempotency_total{result="replayed"} 1.0' in text
    assert 'payrouter_breaker_state{acquirer="sandbox-a",worker="0"} 0.0' in text
    assert 'payrouter_acquirer_healthy{acquirer="sandbox-a",worker="0"} 1.0' in text
    assert "payrouter_acquirer_call_seconds_bucket" in text
    assert "payrouter_config_info{version=" in text


# -------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_acquirer_tls_is_verified_and_a_private_ca_can_be_trusted(
    router_factory: RouterFactory,
    sandbox_factory: Any,
    ca: trustme.CA,
    tmp_path: Path,
) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    sandbox: SandboxServer = await sandbox_factory("sandbox-a", ssl_context=server_ctx)
    assert sandbox.url.startswith("https://")

    untrusted = await router_factory(make_config({"sandbox-a": sandbox.url}), background=False)
    resp = await untrusted.post("/v1/payments", json=SALE, headers=headers("tls-1"))
    body = await resp.json(content_type=None)
    assert (resp.status, body["code"]) == (503, "no_acquirer_available")
    assert "connect_failed" in body["attempts"][0]
    assert sandbox.state.requests_seen == 0  # the handshake failed: nothing was sent

    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = make_config({"sandbox-a": sandbox.url})
    acq = config.acquirers["sandbox-a"].model_copy(update={"ca_file": str(ca_file)})
    trusted = await router_factory(
        config.model_copy(update={"acquirers": {"sandbox-a": acq}}), background=False
    )
    resp = await trusted.post("/v1/payments", json=SALE, headers=headers("tls-2"))
    assert resp.status == 201


def test_tls_verification_cannot_be_turned_off_for_a_live_acquirer() -> None:
    from router.config import ConfigError, parse_config

    text = yaml.safe_dump(
        {
            "callers": {"c": {"api_key_sha256": [sha("k")]}},
            "acquirers": {
                "s": {
                    "kind": "stripe",
                    "base_url": "https://api.stripe.invalid",
                    "test_mode": False,
                    "tls_verify": False,
                    "api_key": {"env": "K"},
                }
            },
            "routing": {"default": ["s"]},
        }
    )
    with pytest.raises(ConfigError, match="cannot be turned off for a live acquirer"):
        parse_config(text, environ={"K": "sk_live_xxxxxxxx"})


async def test_the_router_can_serve_https(tmp_path: Path, ca: trustme.CA) -> None:
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    port = free_port()
    config = tmp_path / "router.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {
                    "port": port,
                    "tls": {"cert_file": str(cert_file), "key_file": str(key_file)},
                },
                "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
                "acquirers": {"a": {"kind": "sandbox", "embedded": True}},
                "routing": {"default": ["a"]},
            }
        )
    )
    proc = spawn_router(config)
    try:
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(
                        f"https://127.0.0.1:{port}/healthz", ssl=client_ctx
                    ) as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the HTTPS listener never came up")
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"https://127.0.0.1:{port}/healthz")  # unknown CA
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
