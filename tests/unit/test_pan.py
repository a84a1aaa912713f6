"""Raw card numbers are found wherever they hide in a request."""

from __future__ import annotations

import hashlib
import re
import uuid

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.pan import MAX_DIGITS, MIN_DIGITS, contains_pan, find_pan, luhn_valid, redact_pans

VISA = "4242424242424242"


def _naive(text: str) -> bool:
    """Every window of every digit run, checked one by one (the slow truth)."""
    from router.pan import digit_runs

    for _, _, digits in digit_runs(text):
        for size in range(MIN_DIGITS, MAX_DIGITS + 1):
            for start in range(len(digits) - size + 1):
                window = digits[start : start + size]
                if window[0] != "0" and luhn_valid(window):
                    return True
    return False


@pytest.mark.parametrize(
    "number", [VISA, "5555555555554444", "378282246310005", "6011111111111117"]
)
def test_known_test_cards_are_luhn_valid(number: str) -> None:
    assert luhn_valid(number)
    assert contains_pan(f"card {number} here")


@pytest.mark.parametrize(
    "text",
    [
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "4242.4242.4242.4242",
        "4242 4242 4242 4242 123",  # the metadata note: CVC written after it
        "exp 12/25 4242424242424242",  # the merchant_reference
        f"card {VISA} 123",  # the refund reason
        f"99{VISA}7",  # inside a longer run of digits
        f"x{VISA}y",
        "3782 822463 10005",  # Amex grouping 4-6-5
    ],
)
def test_a_card_number_next_to_other_digits_or_written_in_groups_is_found(text: str) -> None:
    assert contains_pan(text)


@pytest.mark.parametrize(
    "text",
    [
        "order 12345",
        "424242424242",  # 12 digits: too short for any card
        "1234567890123",
        "31415926535897",
        "1111111111111111",
        "pay_000000000000000000000000",  # a run of zeros is no card: none starts with 0
        "4242 4242  4242 4242",  # two separators in a row end a run
        "4242/4242/4242/4242",
        "tok_visa",
    ],
)
def test_digit_runs_without_a_luhn_valid_window_pass(text: str) -> None:
    assert not contains_pan(text)


@given(st.text(alphabet="0123456789 -.x", max_size=60))
def test_the_linear_search_agrees_with_checking_every_window(text: str) -> None:
    assert contains_pan(text) == _naive(text)


@given(st.text(max_size=30), st.text(max_size=30))
def test_redaction_removes_every_card_number_and_keeps_the_rest(before: str, after: str) -> None:
    redacted = redact_pans(f"{before} {VISA} {after}")
    assert not contains_pan(redacted)
    assert VISA not in redacted


def test_a_long_run_of_digits_is_searched_in_linear_time() -> None:
    """A 64 KiB body of digits must not buy seconds of CPU: the count of Luhn
    sums is bounded by seven per digit, whatever the run's length."""
    assert not contains_pan("1" * 65536)
    assert contains_pan("1" * 65536 + VISA)


def test_the_field_holding_a_card_number_is_named_never_the_number() -> None:
    assert find_pan({"metadata": {"note": "4242 4242 4242 4242 123"}}) == "metadata.note"
    assert find_pan({"metadata": {VISA: "x"}}) == "metadata.<key>"
    assert find_pan({"metadata": {"n": int(VISA)}}) == "metadata.n"
    assert find_pan({"list": [1, float(VISA)]}) == "list.1"
    escaped = b'{"m": "\\u0034242424242424242"}'
    assert find_pan(orjson.loads(escaped)) == "m"
    assert find_pan({"amount": 1000, "metadata": {"order": "A-1"}}) is None


def test_a_dedicated_field_may_be_exempted() -> None:
    body = {"network_token": {"number": VISA}}
    assert find_pan(body) == "network_token.number"
    assert find_pan(body, allowed=lambda path: path == ("network_token", "number")) is None


@given(st.uuids())
def test_uuids_and_digests_are_identifiers_not_card_numbers(value: uuid.UUID) -> None:
    """About 0.7% of random UUIDs would otherwise be refused as idempotency
    keys or references: the joined digits of 8-4-4-4-12 groups, or a run of
    13 decimal digits inside the 32 hex characters, pass the Luhn check."""
    assert not contains_pan(str(value))
    assert not contains_pan(value.hex)
    assert not contains_pan(f"order {value} paid")
    assert not contains_pan(hashlib.sha256(value.bytes).hexdigest())


def test_a_card_number_beside_an_identifier_is_still_found() -> None:
    assert contains_pan(f"{uuid.UUID(int=7)} 4242 4242 4242 4242")
    assert contains_pan("card4242424242424242")  # letters, but no 32-character token
    assert contains_pan("4242424242424242" + "0" * 20)  # all digits: no identifier


_CARDISH = st.sampled_from([VISA, "4242 4242 4242 4242", "order-4242424242424242", "12", ""])
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="0123456789 -.ab", max_size=24)
    | _CARDISH
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(alphabet="0123456789 -ab", max_size=18) | _CARDISH, children, max_size=4
        )
    ),
    max_leaves=12,
)


def _every_text(value: object) -> list[str]:
    """Every key and scalar of parsed JSON as text (the slow truth of what is searched)."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in [str(k), *_every_text(v)]]
    if isinstance(value, list):
        return [t for v in value for t in _every_text(v)]
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    return [str(value)]


@given(_JSON)
def test_a_card_number_is_found_exactly_when_some_key_or_value_holds_one(value: object) -> None:
    """find_pan first asks, without building paths, whether anything holds
    one at all: that must never clear a body the full search would refuse."""
    expected = any(contains_pan(text) for text in _every_text(value))
    assert (find_pan(value) is not None) == expected


@given(st.text(max_size=MIN_DIGITS - 1))
def test_a_text_shorter_than_a_card_number_never_holds_one(text: str) -> None:
    assert contains_pan(text) is False
    assert _naive(text) is False


_header_text = st.lists(
    st.sampled_from([VISA, "4242 4242", "4242-", "-4242", "1234567890123", "a", " ", "."]),
    max_size=4,
).map("".join)
_header_names = st.sampled_from(
    ["X-Note", "X-Request-Id", "4242424242", "X-4242-4242", f"X-{VISA}"]
)


@given(st.lists(st.tuples(_header_names, _header_text), max_size=5))
def test_the_headers_are_refused_exactly_when_one_name_or_value_holds_a_card_number(
    headers: list[tuple[str, str]],
) -> None:
    """Every header name and value is searched on its own: the first that
    holds a card number is named, and X-Request-Id is reminted, not refused."""
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    from router.http.inputs import _pan_around

    request = make_mocked_request("POST", "/v1/payments", headers=CIMultiDict(headers))
    expected = next(
        (
            "a header name" if contains_pan(name) else f"the {name} header"
            for name, value in headers
            if name.lower() != "x-request-id" and (contains_pan(name) or contains_pan(value))
        ),
        None,
    )
    assert _pan_around(request) == expected


_OLD_LONG_RUN = re.compile(rf"[0-9](?:[ .\-]?[0-9]){{{MIN_DIGITS - 1}}}")


@given(st.text(alphabet="0123456789 .-ab_", max_size=60))
def test_the_long_run_prefilter_finds_what_the_plain_pattern_finds(text: str) -> None:
    """The atomic, possessive form of the scan is the same search as the plain one."""
    from router.pan import LONG_RUN

    found, plain = LONG_RUN.search(text), _OLD_LONG_RUN.search(text)
    assert (found and found.span()) == (plain and plain.span())
