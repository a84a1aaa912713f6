"""Raw card numbers are found wherever they hide in a request."""

from __future__ import annotations

import orjson
import pytest

from router.pan import contains_pan, json_contains_pan, luhn_valid


@pytest.mark.parametrize(
    "number", ["4242424242424242", "5555555555554444", "378282246310005", "6011111111111117"]
)
def test_known_test_cards_are_luhn_valid(number: str) -> None:
    assert luhn_valid(number)
    assert contains_pan(f"card {number} here")


@pytest.mark.parametrize("text", ["4242 4242 4242 4242", "4242-4242-4242-4242"])
def test_grouped_card_numbers_are_detected(text: str) -> None:
    assert contains_pan(text)


@pytest.mark.parametrize(
    "text",
    ["4242424242424241", "order 12345", "424242424242", "42424242424242424242424", "tok_visa"],
)
def test_non_card_digit_runs_pass(text: str) -> None:
    assert not contains_pan(text)


def test_card_numbers_in_keys_numbers_and_escapes_are_detected() -> None:
    assert json_contains_pan({"metadata": {"4242424242424242": "x"}})
    assert json_contains_pan({"metadata": {"n": 4242424242424242}})
    assert json_contains_pan({"list": [1, 4242424242424242.0]})
    escaped = b'{"m": "\\u0034242424242424242"}'
    assert json_contains_pan(orjson.loads(escaped))
    assert not json_contains_pan({"amount": 1000, "metadata": {"order": "A-1"}})
