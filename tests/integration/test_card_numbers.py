"""A card number, however it is written and wherever it is put, is refused and
never reaches the logs, the records or an acquirer (issue 12, items 1, 4, 10).

One router serves the whole module (see tests/threaded.py); every example
checks three things that must not change or appear: the acquirer's wire
transcript, the log lines, and the idempotency key (a refused request stores
nothing, so the same key then works for a clean request).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import AUTH, make_config
from tests.threaded import LogLines, Reply, ThreadedRouter, capturing_logs

CARDS = ["4242424242424242", "5555555555554444", "378282246310005", "6011111111111117"]
SALE = {"amount": 1000, "currency": "EUR", "payment_method": "tok_visa"}
_keys = (f"cn-{n}" for n in itertools.count())
_SEPARATORS = re.compile(r"[ .\-]")


@pytest.fixture(scope="module")
def logs() -> Iterator[LogLines]:
    with capturing_logs() as lines:
        yield lines


@pytest.fixture(scope="module")
def router(logs: LogLines) -> Iterator[ThreadedRouter]:
    with ThreadedRouter(make_config) as running:
        yield running


@pytest.fixture(scope="module")
def payment_id(router: ThreadedRouter) -> str:
    reply = _post(router, "/v1/payments", SALE, next(_keys))
    assert reply.status == 201, reply.body
    return str(json.loads(reply.body)["id"])


def _post(router: ThreadedRouter, path: str, body: Any, key: str, **headers: str | bytes) -> Reply:
    sent = {**AUTH, "Idempotency-Key": key, "Content-Type": "application/json", **headers}
    return router.request("POST", path, json.dumps(body).encode(), sent)


def _written(card: str, style: str) -> str:
    if style == "plain":
        return card
    separator = {"spaces": " ", "dashes": "-", "dots": "."}[style]
    return separator.join(card[i : i + 4] for i in range(0, len(card), 4))


#: a card number as people write it, with text or digits on either side
embedded = st.builds(
    lambda card, style, before, after: f"{before}{_written(card, style)}{after}",
    st.sampled_from(CARDS),
    st.sampled_from(["plain", "spaces", "dashes", "dots"]),
    st.sampled_from(["", "card ", "exp 12/25 ", "7", "ref:", "x"]),
    st.sampled_from(["", " 123", "9", " end", "/1"]),
)


class Traces:
    """What the router did with one request: log lines and wire traffic since."""

    def __init__(self, router: ThreadedRouter, logs: LogLines) -> None:
        self.router, self.logs = router, logs
        self.log_mark = logs.mark()
        self.wire_mark = sum(len(s.state.wire) for s in router.sandboxes)

    def sent_on(self) -> int:
        return sum(len(s.state.wire) for s in self.router.sandboxes) - self.wire_mark

    def assert_nowhere(self, card: str, reply: Reply) -> None:
        for line in self.logs.since(self.log_mark):
            assert card not in _SEPARATORS.sub("", line), line
        assert card not in _SEPARATORS.sub("", reply.body.decode()), reply.body
        for sandbox in self.router.sandboxes:
            for received in sandbox.state.wire:
                assert card not in _SEPARATORS.sub("", received.text())


def _assert_refused(reply: Reply) -> None:
    assert reply.status == 400, reply.body
    assert json.loads(reply.body)["code"] == "raw_card_number_refused"


def _card_of(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    return next(card for card in CARDS if card in digits)


string_fields = st.sampled_from(
    ["merchant_reference", "metadata value", "metadata key", "payment_method"]
)


def _body_with(field: str, text: str) -> dict[str, Any]:
    if field == "merchant_reference":
        return {**SALE, "merchant_reference": text}
    if field == "metadata value":
        return {**SALE, "metadata": {"note": text}}
    if field == "metadata key":
        return {**SALE, "metadata": {text[:40]: "x"}}
    return {**SALE, "payment_method": f"tok_{text}"}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=string_fields, text=embedded)
def test_a_card_number_in_any_string_field_is_refused_and_kept_nowhere(
    router: ThreadedRouter, logs: LogLines, field: str, text: str
) -> None:
    if field == "metadata key" and _card_of(text) not in re.sub(r"\D", "", text[:40]):
        return  # the key was cut before the whole number
    key, traces = next(_keys), Traces(router, logs)
    reply = _post(router, "/v1/payments", _body_with(field, text), key)
    _assert_refused(reply)
    traces.assert_nowhere(_card_of(text), reply)
    assert traces.sent_on() == 0
    assert _post(router, "/v1/payments", SALE, key).status == 201  # nothing was stored


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=embedded, where=st.sampled_from(["reason", "merchant_reference"]))
def test_a_card_number_in_a_refund_is_refused_and_kept_nowhere(
    router: ThreadedRouter, logs: LogLines, payment_id: str, text: str, where: str
) -> None:
    key, traces = next(_keys), Traces(router, logs)
    reply = _post(router, f"/v1/payments/{payment_id}/refunds", {"amount": 1, where: text}, key)
    _assert_refused(reply)
    traces.assert_nowhere(_card_of(text), reply)
    assert traces.sent_on() == 0


header_names = st.sampled_from(["Idempotency-Key", "X-Shop-Note", "Accept", "User-Agent"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=header_names, text=embedded)
def test_a_card_number_in_any_header_is_refused_and_kept_nowhere(
    router: ThreadedRouter, logs: LogLines, name: str, text: str
) -> None:
    key, traces = next(_keys), Traces(router, logs)
    reply = _post(router, "/v1/payments", SALE, key, **{name: text})
    _assert_refused(reply)
    traces.assert_nowhere(_card_of(text), reply)
    assert traces.sent_on() == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=embedded.filter(lambda t: re.fullmatch(r"[A-Za-z0-9._:\-]+", t) is not None))
def test_a_card_number_in_x_request_id_is_replaced_never_echoed_logged_or_sent(
    router: ThreadedRouter, logs: LogLines, text: str
) -> None:
    key, traces = next(_keys), Traces(router, logs)
    reply = _post(router, "/v1/payments", SALE, key, **{"X-Request-Id": text})
    assert reply.status == 201, reply.body
    minted = reply.headers["X-Request-Id"]
    assert minted.startswith("req_")
    sent = [r for s in router.sandboxes for r in list(s.state.wire)[-3:]]
    assert minted in {v for r in sent for k, v in r.headers if k.lower() == "x-request-id"}
    traces.assert_nowhere(_card_of(text), reply)


def test_an_unauthenticated_request_id_with_a_card_number_is_not_logged(
    router: ThreadedRouter, logs: LogLines
) -> None:
    traces = Traces(router, logs)
    reply = router.request("GET", "/v1/payments/pay_x", None, {"X-Request-Id": "4242424242424242"})
    assert reply.status == 401
    assert reply.headers["X-Request-Id"].startswith("req_")
    traces.assert_nowhere("4242424242424242", reply)


def test_the_issues_examples_are_refused_and_name_the_field(router: ThreadedRouter) -> None:
    body = {
        **SALE,
        "metadata": {"note": "4242 4242 4242 4242 123"},
        "merchant_reference": "exp 12/25 4242424242424242",
    }
    reply = _post(router, "/v1/payments", body, next(_keys))
    _assert_refused(reply)
    assert json.loads(reply.body)["field"] in {"metadata.note", "merchant_reference"}


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/v1/payments", b'{"4242424242424242": 1, "4242424242424242": 2}'),
        ("GET", "/v1/payments/4242424242424242", None),
        ("GET", "/v1/refunds/re_4242424242424242", None),
        ("GET", "/v1/4242424242424242", None),
        ("POST", "/webhooks/4242424242424242", b"{}"),
        ("GET", "/v1/payments/pay_1?card=4242424242424242", None),
    ],
)
def test_no_refusal_echoes_a_card_number(
    router: ThreadedRouter, logs: LogLines, method: str, path: str, raw: bytes | None
) -> None:
    traces = Traces(router, logs)
    headers = {**AUTH, "Idempotency-Key": next(_keys), "Content-Type": "application/json"}
    reply = router.request(method, path, raw, headers)
    assert 400 <= reply.status < 500
    traces.assert_nowhere("4242424242424242", reply)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/payments/pay_1?note=4242%204242%204242%204242",
        "/v1/payments/pay_1?note=4242+4242+4242+4242",
        "/v1/payments/4242%2D4242%2D4242%2D4242",
    ],
)
def test_a_card_number_percent_encoded_in_the_url_is_refused(
    router: ThreadedRouter, path: str
) -> None:
    reply = router.request("GET", path, None, dict(AUTH))
    assert (reply.status, json.loads(reply.body)["code"]) == (400, "raw_card_number_refused")
