"""Fuzzing the public API and the webhook endpoints over real HTTP: whatever
arrives (any body, header, signature, validly signed nonsense), the answer is
never a 5xx, and every refusal is problem+json."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.adyen.webhooks import item_hmac
from adapters.signing import sign_timestamped
from router.config import Config
from tests.helpers import (
    ADYEN_HMAC_KEY,
    CKO_WEBHOOK_SECRET,
    DEMO_KEY,
    STRIPE_WHSEC,
    make_config,
    webhook_acquirers,
)
from tests.threaded import Reply, ThreadedRouter


def _config(sandboxes: dict[str, str]) -> Config:
    return make_config(sandboxes, acquirers=webhook_acquirers())


@pytest.fixture(scope="module")
def router() -> Iterator[ThreadedRouter]:
    with ThreadedRouter(_config) as running:
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
header_names = st.sampled_from(
    ["X-Request-Id", "Accept", "X-Forwarded-For", "Content-Encoding", "Transfer-Encoding"]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
#: header values as raw bytes: UTF-8 beyond ASCII, and what looks like a card number
header_values = st.one_of(
    st.text(max_size=40).map(lambda t: t.replace("\r", "").replace("\n", "").encode()),
    st.sampled_from([b"4242 4242 4242 4242", b"gzip", b"chunked", b"\xff\xfe"]),
)
header_sets = st.dictionaries(header_names, header_values, max_size=3)


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
    extra=header_sets,
)
def test_no_input_ever_gets_a_5xx(
    router: ThreadedRouter,
    method: str,
    path: str,
    body: bytes,
    auth: str,
    key: str | None,
    extra: dict[str, bytes],
) -> None:
    headers: dict[str, Any] = {"Content-Type": "application/json", **extra}
    if auth:
        headers["Authorization"] = auth
    if key is not None:
        headers["Idempotency-Key"] = key
    sent = body if method in ("POST", "PUT", "PATCH") else None
    _assert_refused_well(router.request(method, path, sent, headers))


def _assert_refused_well(reply: Reply) -> None:
    assert reply.status < 500, (reply.status, reply.body[:300])
    if reply.status >= 400:
        assert reply.headers.get("Content-Type", "").startswith("application/problem+json")
        problem = json.loads(reply.body)
        assert {"type", "title", "status", "code", "detail"} <= set(problem)
        assert b"Traceback" not in reply.body


def _adyen_signed(items: list[dict[str, Any]]) -> bytes:
    for item in items:
        extra = item.get("additionalData")
        item["additionalData"] = {**(extra if isinstance(extra, dict) else {})}
        item["additionalData"]["hmacSignature"] = item_hmac(item, ADYEN_HMAC_KEY)
    return json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in items]}
    ).encode()


adyen_items = st.lists(
    st.dictionaries(
        st.sampled_from(
            [
                "pspReference",
                "originalReference",
                "merchantReference",
                "eventCode",
                "success",
                "amount",
                "reason",
                "merchantAccountCode",
                "additionalData",
            ]
        ),
        json_values,
        max_size=8,
    ),
    min_size=1,
    max_size=3,
)
stripe_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "type": st.sampled_from(["payment_intent.succeeded", "charge.refund.updated"])
        | json_values,
        "livemode": json_values,
        "data": st.fixed_dictionaries(
            {}, optional={"object": st.dictionaries(st.text(max_size=10), json_values)}
        )
        | json_values,
    },
)
#: deliveries to every webhook endpoint: unsigned, badly signed (non-ASCII
#: too) and validly signed with shapes no acquirer would send
deliveries = st.one_of(
    st.tuples(st.just("stripe"), stripe_like.map(lambda e: json.dumps(e).encode()), st.just(b"")),
    st.tuples(st.just("stripe"), st.binary(max_size=100), st.just(b"")),
    st.tuples(st.just("adyen"), adyen_items.map(_adyen_signed), st.just(b"")),
    st.tuples(st.just("adyen"), json_values.map(lambda v: json.dumps(v).encode()), st.just(b"")),
    st.tuples(st.just("checkout"), json_values.map(lambda v: json.dumps(v).encode()), st.just(b"")),
    st.tuples(
        st.sampled_from(["checkout", "sandbox-a", "nobody", "%41", "4242424242424242"]),
        st.binary(max_size=100),
        header_values,
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delivery=deliveries, sign=st.booleans(), mangle=header_values)
def test_no_webhook_delivery_ever_gets_a_5xx(
    router: ThreadedRouter, delivery: tuple[str, bytes, bytes], sign: bool, mangle: bytes
) -> None:
    acquirer, body, signature = delivery
    headers: dict[str, Any] = {"Content-Type": "application/json"}
    if acquirer == "stripe":
        headers["Stripe-Signature"] = sign_timestamped(STRIPE_WHSEC, body) if sign else mangle
    elif acquirer == "checkout":
        valid = hmac.new(CKO_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers["Cko-Signature"] = valid if sign else mangle
    elif signature:
        headers["Stripe-Signature"] = signature
    reply = router.request("POST", f"/webhooks/{acquirer}", body, headers)
    assert reply.status in (200, 400, 401, 404), (reply.status, reply.body[:300])
    _assert_refused_well(reply)
