"""Issue 12's remaining holes over HTTP: content types, oversized numbers,
caller address allowlists behind trusted proxies, routing rules per caller
for test keys, webhook secret rotation, /metrics apart from the API, TLS."""

from __future__ import annotations

import asyncio
import functools
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import trustme
import yaml
from aiohttp.test_utils import TestClient

from adapters.sandbox.server import SandboxServer
from adapters.signing import sign_timestamped
from adapters.transport import tls_context
from router.config import Config, load_config
from router.http.app import create_app
from router.http.ops import metrics_app
from router.http.server import Listen, listener_tls, serve
from router.routing.explain import explain
from tests.conftest import RouterFactory
from tests.helpers import AUTH, DEMO_KEY, eventually, headers, make_config, sha
from tests.procs.net import free_port

Client = TestClient[Any, Any]
SALE = {"amount": 1000, "currency": "EUR", "payment_method": "tok_visa"}
WAIT_S = 10


@pytest.fixture
async def client(router_factory: RouterFactory, sandbox_factory: Any) -> Client:
    sandbox = await sandbox_factory("sandbox-a")
    return await router_factory(make_config({"sandbox-a": sandbox.url}), background=False)


# ------------------------------------------------- what a body may be (9, 12)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_a_body_that_does_not_say_it_is_json_is_415(
    client: Client, content_type: str | None
) -> None:
    sent = {**AUTH, "Idempotency-Key": f"ct-{str(content_type).replace(' ', '')}"}
    if content_type is not None:
        sent["Content-Type"] = content_type
    resp = await client.post("/v1/payments", data=orjson.dumps(SALE), headers=sent)
    problem = await resp.json(content_type=None)
    assert (resp.status, problem["code"]) == (415, "unsupported_media_type")
    assert resp.headers["Accept-Post"] == "application/json"


async def test_json_with_a_utf8_charset_is_taken(client: Client) -> None:
    sent = {**headers("ct-ok"), "Content-Type": "application/json; charset=UTF-8"}
    resp = await client.post("/v1/payments", data=orjson.dumps(SALE), headers=sent)
    assert resp.status == 201


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount": 1' + b"0" * 5000 + b', "currency": "EUR", "payment_method": "tok_visa"}',
        b'{"amount": 1000, "currency": "EUR", "payment_method": "tok_visa", "metadata": {"n": 1'
        + b"2" * 4400
        + b"}}",
    ],
    ids=["amount", "metadata"],
)
async def test_an_integer_of_thousands_of_digits_is_400(client: Client, raw: bytes) -> None:
    resp = await client.post("/v1/payments", data=raw, headers=headers("big-int"))
    assert resp.status == 400
    assert (await resp.json(content_type=None))["code"] in {"invalid_json", "invalid_request"}


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
async def test_the_bearer_scheme_is_matched_in_any_case(client: Client, scheme: str) -> None:
    resp = await client.get(
        "/v1/payments/pay_000000000000000000000000",
        headers={"Authorization": f"{scheme} {DEMO_KEY}"},
    )
    assert resp.status == 404  # authenticated: the payment simply does not exist


# ------------------------------------- caller addresses and proxies (item 15)


def _allowlisted(url: str, *, proxies: list[str]) -> Config:
    return make_config(
        {"sandbox-a": url},
        callers={"demo": {"api_key_sha256": [sha(DEMO_KEY)], "allow_from": ["10.0.0.0/8"]}},
        server={"trusted_proxies": proxies},
    )


@pytest.mark.parametrize(
    ("proxies", "forwarded", "status"),
    [
        ([], None, 403),  # 127.0.0.1 is not in 10/8
        ([], "10.1.2.3", 403),  # the header is not believed from an untrusted peer
        (["127.0.0.1/32"], "10.1.2.3", 201),
        (["127.0.0.1/32"], "10.1.2.3, 127.0.0.1", 201),  # a trusted hop is skipped
        (["127.0.0.1/32"], "10.1.2.3, 198.51.100.7", 403),  # the nearest untrusted hop calls
        (["127.0.0.1/32"], "not-an-address", 403),  # unknown: no allowlist admits it
        (["127.0.0.1/32"], None, 403),  # the proxy itself is the client
    ],
)
async def test_a_caller_may_call_only_from_its_networks(
    router_factory: RouterFactory,
    sandbox_factory: Any,
    proxies: list[str],
    forwarded: str | None,
    status: int,
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(_allowlisted(sandbox.url, proxies=proxies), background=False)
    sent = headers(f"ip-{len(proxies)}-{str(forwarded).replace(' ', '')}")
    if forwarded is not None:
        sent["X-Forwarded-For"] = forwarded
    resp = await client.post("/v1/payments", json=SALE, headers=sent)
    assert resp.status == status
    if status == 403:
        assert (await resp.json(content_type=None))["code"] == "address_not_allowed"
        assert sandbox.state.requests_seen == 0


async def test_the_admin_api_has_its_own_allowlist(router_factory: RouterFactory) -> None:
    config = make_config(
        {"sandbox-a": "http://127.0.0.1:9"},
        admin={"api_key_sha256": [sha("admin-key-0123")], "allow_from": ["192.0.2.0/24"]},
    )
    client = await router_factory(config, background=False)
    resp = await client.get("/admin/acquirers", headers={"Authorization": "Bearer admin-key-0123"})
    assert (resp.status, (await resp.json(content_type=None))["code"]) == (
        403,
        "address_not_allowed",
    )


# ------------------------------------------- routing rules per caller (14)


async def test_a_caller_rule_matches_the_callers_test_keys_as_explain_says(
    router_factory: RouterFactory,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    a, b = two_sandboxes
    config = make_config(
        {"sandbox-a": a.url, "sandbox-b": b.url},
        routing={
            "rules": [{"name": "demo-to-b", "match": {"caller": ["demo"]}, "pool": ["sandbox-b"]}]
        },
    )
    plan, _, _ = explain(config, {**SALE, "caller": "demo"})
    assert (plan.rule, plan.candidates) == ("demo-to-b", ["sandbox-b"])
    client = await router_factory(config, background=False)
    resp = await client.post("/v1/payments", json=SALE, headers=headers("rule"))  # a test key
    assert (resp.status, (await resp.json())["acquirer"]) == (201, "sandbox-b")


# --------------------------------------------- webhook secret rotation (16)


async def test_two_webhook_secrets_work_while_rotating_and_the_old_one_stops_after(
    router_factory: RouterFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = "whsec_old_0123456789", "whsec_new_0123456789"
    monkeypatch.setenv("WHSEC_OLD", old)
    monkeypatch.setenv("WHSEC_NEW", new)
    monkeypatch.setenv("STRIPE_KEY", "sk_test_stripe_key")
    path = tmp_path / "router.yaml"

    def write(*secrets: str) -> None:
        stripe = {
            "kind": "stripe",
            "base_url": "http://127.0.0.1:9",
            "api_key": {"env": "STRIPE_KEY"},
            "webhook_secrets": [{"env": name} for name in secrets],
        }
        path.write_text(
            yaml.safe_dump(
                {
                    "callers": {"demo": {"api_key_sha256": [sha(DEMO_KEY)]}},
                    "admin": {"api_key_sha256": [sha("admin-key-0123")]},
                    "acquirers": {"stripe": stripe},
                    "routing": {"default": ["stripe"]},
                }
            )
        )

    write("WHSEC_OLD", "WHSEC_NEW")
    client = await router_factory(load_config(path), config_path=str(path), background=False)

    async def deliver(secret: str, n: int) -> int:
        body = orjson.dumps({"id": f"evt_{n}", "type": "ping", "data": {"object": {}}})
        header = sign_timestamped(secret, body)
        resp = await client.post(
            "/webhooks/stripe", data=body, headers={"Stripe-Signature": header}
        )
        return resp.status

    assert (await deliver(old, 1), await deliver(new, 2)) == (200, 200)
    write("WHSEC_NEW")
    admin = {"Authorization": "Bearer admin-key-0123"}
    assert (await client.post("/admin/config/reload", headers=admin)).status == 200
    assert (await deliver(old, 3), await deliver(new, 4)) == (401, 200)


# -------------------------------------------- /metrics apart, and TLS (17)


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def _serving(config: Config, listen: Listen) -> tuple[asyncio.Task[None], asyncio.Event]:
    app = create_app(config, background=False)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config.server, listen, side=metrics_app(app), stop=stop))
    for port in (listen.port, config.server.metrics.port):
        if port is not None:
            assert await eventually(functools.partial(_accepts, port), bool, seconds=WAIT_S)
    return task, stop


async def test_metrics_can_live_on_their_own_port_away_from_the_api() -> None:
    api, side = free_port(), free_port()
    config = make_config({"sandbox-a": "http://127.0.0.1:9"}, server={"metrics": {"port": side}})
    task, stop = await _serving(config, Listen("127.0.0.1", api))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{api}/metrics") as resp:
                assert resp.status == 404
            async with session.get(f"http://127.0.0.1:{side}/metrics") as resp:
                assert resp.status == 200
                assert "payrouter_http_requests_total" in await resp.text()
            async with session.get(f"http://127.0.0.1:{side}/v1/payments/x", headers=AUTH) as resp:
                assert resp.status == 404  # the metrics port serves nothing else
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


async def test_metrics_can_require_a_key(router_factory: RouterFactory) -> None:
    config = make_config(
        {"sandbox-a": "http://127.0.0.1:9"},
        server={"metrics": {"api_key_sha256": [sha("metrics-reader-key")]}},
    )
    client = await router_factory(config, background=False)
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=AUTH)).status == 403
    ok = await client.get("/metrics", headers={"Authorization": "Bearer metrics-reader-key"})
    assert ok.status == 200


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_the_listener_refuses_tls_below_1_2(tmp_path: Path, ca: trustme.CA) -> None:
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls = listener_tls(str(cert_file), str(key_file))
    assert tls.minimum_version is ssl.TLSVersion.TLSv1_2

    port = free_port()
    config = make_config({"sandbox-a": "http://127.0.0.1:9"})
    task, stop = await _serving(config, Listen("127.0.0.1", port, tls))
    try:
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(old)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await asyncio.open_connection("127.0.0.1", port, ssl=old)

        modern = ssl.create_default_context()
        ca.configure_trust(modern)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"https://127.0.0.1:{port}/healthz", ssl=modern) as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Server"] == "payrouter"
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


def test_acquirers_are_reached_over_verified_tls_1_2_or_newer() -> None:
    config = make_config({"sandbox-a": "https://127.0.0.1:9"})
    context = tls_context(config.acquirers["sandbox-a"])
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


async def test_a_stopped_server_frees_its_ports() -> None:
    port = free_port()
    config = make_config({"sandbox-a": "http://127.0.0.1:9"})
    task, stop = await _serving(config, Listen("127.0.0.1", port))
    stop.set()
    await asyncio.wait_for(task, WAIT_S)

    async def refused() -> bool:
        return not await _accepts(port)

    assert await eventually(refused, bool, seconds=WAIT_S)
