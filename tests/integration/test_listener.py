"""The listener in front of the application (issue 12, items 5, 6, 11, 12, 17):
whatever the bytes on the wire, the answer is problem+json with the status
that names the fault, slow clients are cut off, and no request can grow the
metrics or hold a connection forever.

These tests speak raw HTTP/1.1 over a socket: a well-behaved client library
would refuse to send most of what is sent here.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import RouterFactory
from tests.helpers import AUTH, DEMO_KEY, eventually, make_config, webhook_acquirers

Client = TestClient[Any, Any]
SALE = orjson.dumps({"amount": 1000, "currency": "EUR", "payment_method": "tok_visa"})
#: long enough to fail a hang, never waited out by a passing test
WAIT_S = 10


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"].startswith("application/problem+json"), self
        body: dict[str, Any] = orjson.loads(self.body)
        return body


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), WAIT_S)
    return Answer(status, headers, body)


async def _raw(port: int, data: bytes) -> Answer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await _read_answer(reader)
    finally:
        writer.close()


async def _closed(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection (EOF) within WAIT_S."""
    try:
        return await asyncio.wait_for(reader.read(), WAIT_S) == b""
    except ConnectionResetError:
        return True


def _request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: router", *headers]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@pytest.fixture
async def client(router_factory: RouterFactory, sandbox_factory: Any) -> Client:
    sandbox = await sandbox_factory("sandbox-a")
    config = make_config(
        {"sandbox-a": sandbox.url},
        server={"header_timeout_s": 0.5, "body_timeout_s": 0.5, "max_connections": 4},
    )
    return await router_factory(config, background=False)


def _port(client: Client) -> int:
    port = client.server.port
    assert port is not None
    return port


# ------------------------------------------------ parser refusals (item 11)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (_request("GET", "/v1/payments/" + "a" * 9000), 414, "uri_too_long"),
        (_request("GET", "/healthz", "X-Long: " + "b" * 9000), 431, "headers_too_large"),
        (
            _request("GET", "/healthz", *(f"X-H{i}: v" for i in range(120))),
            431,
            "headers_too_large",
        ),
        (_request("GET", "/healthz", *(f"X-H{i}: v" for i in range(70))), 431, "headers_too_large"),
        (b"GET /healthz HTTP/1.1\r\nHost: r\r\nX-Bad: a\x01b\r\n\r\n", 400, "malformed_request"),
        (b"FOO /healthz HTTP/1.1\r\nHost: r\r\n\r\n", 400, "unknown_method"),
        (b"G@T /healthz HTTP/1.1\r\nHost: r\r\n\r\n", 400, "unknown_method"),
        (b"GET /heal\x00thz HTTP/1.1\r\nHost: r\r\n\r\n", 400, "malformed_request"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "unknown_method"),
        (
            b"POST /v1/payments HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "malformed_request",
        ),
    ],
    ids=[
        "url-9000",
        "header-9000",
        "120-headers",
        "70-headers",
        "control-byte-in-header",
        "unknown-method",
        "bad-method-token",
        "nul-in-path",
        "tls-on-plain-port",
        "broken-chunk",
    ],
)
async def test_what_the_http_parser_refuses_is_problem_json_with_its_status(
    client: Client, data: bytes, status: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await _raw(_port(client), data)
    assert (answer.status, answer.problem()["code"]) == (status, code)
    assert answer.headers["server"] == "payrouter"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_method_no_route_takes_is_405_naming_the_allowed_ones(client: Client) -> None:
    answer = await _raw(_port(client), _request("PURGE", "/v1/payments"))
    assert (answer.status, answer.problem()["code"]) == (405, "method_not_allowed")
    assert set(answer.headers["allow"].split(",")) == {"GET", "HEAD", "POST"}
    resp = await client.delete("/v1/payments/pay_000000000000000000000000", headers=AUTH)
    assert resp.status == 405
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}


async def test_the_server_header_names_no_versions(client: Client) -> None:
    for resp in (await client.get("/healthz"), await client.get("/nowhere")):
        assert resp.headers["Server"] == "payrouter"


# ----------------------------------------------- slow clients (item 6)


async def test_a_stalled_body_is_answered_408_and_the_connection_closed(client: Client) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(client))
    head = _request(
        "POST",
        "/v1/payments",
        f"Authorization: Bearer {DEMO_KEY}",
        "Idempotency-Key: stalled",
        "Content-Type: application/json",
        "Content-Length: 500",
    )
    writer.write(head + SALE[:10])
    answer = await _read_answer(reader)
    assert (answer.status, answer.problem()["code"]) == (408, "request_timeout")
    assert await _closed(reader)
    writer.close()


async def test_a_stalled_webhook_body_is_answered_408_without_authentication(
    router_factory: RouterFactory,
) -> None:
    config = make_config(
        {"sandbox-a": "http://127.0.0.1:9"},
        acquirers=webhook_acquirers(),
        server={"body_timeout_s": 0.5},
    )
    client = await router_factory(config, background=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(client))
    writer.write(_request("POST", "/webhooks/stripe", "Content-Length: 400") + b"{")
    answer = await _read_answer(reader)
    assert (answer.status, answer.problem()["code"]) == (408, "request_timeout")
    writer.close()


async def test_headers_that_never_finish_get_the_connection_closed(client: Client) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(client))
    writer.write(b"POST /v1/payments HTTP/1.1\r\nHost: router\r\nX-Slow: a")
    await writer.drain()
    assert await _closed(reader)
    writer.close()


async def test_connections_beyond_the_limit_get_503_and_the_limit_frees_up(
    client: Client,
) -> None:
    idle = [await asyncio.open_connection("127.0.0.1", _port(client)) for _ in range(4)]
    answer = await _raw(_port(client), _request("GET", "/healthz"))
    assert (answer.status, answer.problem()["code"]) == (503, "too_many_connections")
    assert answer.headers["retry-after"] == "1"
    for _, writer in idle:
        writer.close()

    async def health() -> int:
        return (await _raw(_port(client), _request("GET", "/healthz"))).status

    assert await eventually(health, lambda status: status == 200, seconds=WAIT_S) == 200


async def test_a_client_that_leaves_mid_body_is_counted_499_not_500(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _reader, writer = await asyncio.open_connection("127.0.0.1", _port(client))
    writer.write(
        _request(
            "POST",
            "/v1/payments",
            f"Authorization: Bearer {DEMO_KEY}",
            "Idempotency-Key: gone",
            "Content-Type: application/json",
            "Content-Length: 500",
        )
        + SALE[:10]
    )
    await writer.drain()
    writer.close()

    async def statuses() -> set[str]:
        text = await (await client.get("/metrics")).text()
        return set(re.findall(r'route="/v1/payments",status="(\d+)"', text))

    assert await eventually(statuses, lambda seen: seen == {"499"}, seconds=WAIT_S) == {"499"}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# ---------------------------------------------- bounded metrics (item 5)


async def test_no_request_can_add_a_metrics_series(client: Client) -> None:
    async def series() -> set[str]:
        text = await (await client.get("/metrics")).text()
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if "http_requests" in line}

    await client.post("/webhooks/name", data=b"{}")
    await client.request("PURGE", "/v1/payments")
    await client.get("/nowhere")
    await series()
    before = await series()
    for i in range(40):
        await client.post(f"/webhooks/name{i}", data=b"{}")
        await client.post("/webhooks/4242424242424242", data=b"{}")
        await client.get(f"/nowhere/{i}")
        await client.request(["PURGE", "LINK", "UNLINK", "MKCOL"][i % 4], "/v1/payments")
    after = await series()
    assert after == before
    assert "4242424242424242" not in await (await client.get("/metrics")).text()
