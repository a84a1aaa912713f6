"""Fuzzing the public API over real HTTP: whatever arrives, the answer is never
a 5xx, and every refusal is problem+json."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sandbox.server import SandboxServer
from router.app import create_app
from tests.helpers import DEMO_KEY, make_config
from tests.redis_procs import free_port


class _Router:
    """A router and two sandboxes on their own event loop in a thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        sandboxes = [SandboxServer(n, seed=1) for n in ("sandbox-a", "sandbox-b")]
        for s in sandboxes:
            await s.start()
        app = create_app(make_config({s.state.name: s.url for s in sandboxes}), background=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        for s in sandboxes:
            await s.close()

    def __enter__(self) -> _Router:
        self.thread.start()
        assert self._ready.wait(15), "router did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)


@pytest.fixture(scope="module")
def router() -> Iterator[_Router]:
    with _Router() as running:
        yield running


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
payment_like = st.fixed_dictionaries(
    {},
    optional={
        "amount": st.one_of(st.integers(-5, 10**13), st.text(max_size=5), st.floats()),
        "currency": st.sampled_from(["EUR", "JPY", "KWD", "eur", "XXX", ""]) | st.text(max_size=4),
        "payment_method": st.sampled_from(
            ["tok_visa", "tok_decline_x", "tok_pending", "4242424242424242"]
        )
        | st.text(max_size=20),
        "capture": st.booleans() | st.integers(0, 1),
        "metadata": st.dictionaries(st.text(max_size=45), st.text(max_size=30), max_size=3),
        "routing": st.fixed_dictionaries(
            {}, optional={"bin": st.text(max_size=9), "acquirer": st.text(max_size=10)}
        ),
        "extra": json_values,
    },
)
ids = st.sampled_from(["pay_000000000000000000000000", "re_000000000000000000000000"]) | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789_%.-", max_size=30
)
paths = st.one_of(
    st.just("/v1/payments"),
    ids.map(lambda i: f"/v1/payments/{i}"),
    st.tuples(ids, st.sampled_from(["capture", "void", "refunds", "nope"])).map(
        lambda t: f"/v1/payments/{t[0]}/{t[1]}"
    ),
    ids.map(lambda i: f"/v1/refunds/{i}"),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz/_-.%", max_size=30).map(lambda p: "/" + p),
)
latin1 = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]),
    path=paths,
    body=st.one_of(
        payment_like.map(lambda d: json.dumps(d).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
    ),
    auth=st.sampled_from([f"Bearer {DEMO_KEY}", "Bearer wrong", "", "Basic abc"]),
    key=st.one_of(st.none(), latin1),
)
def test_no_input_ever_gets_a_5xx(
    router: _Router, method: str, path: str, body: bytes, auth: str, key: str | None
) -> None:
    headers: dict[str, Any] = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    if key is not None:
        headers["Idempotency-Key"] = key
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=30)
    try:
        conn.request(
            method, path, body=body if method in ("POST", "PUT", "PATCH") else None, headers=headers
        )
        resp = conn.getresponse()
        payload = resp.read()
    finally:
        conn.close()
    assert resp.status < 500, (resp.status, payload[:300])
    if resp.status >= 400:
        assert resp.getheader("Content-Type", "").startswith("application/problem+json"), payload
        problem = json.loads(payload)
        assert {"type", "title", "status", "code", "detail"} <= set(problem)
        assert b"Traceback" not in payload
