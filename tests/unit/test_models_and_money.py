"""Request models are strict: minor units as integers, known currencies, no extras."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from router.payments import money
from router.payments.models import AcquirerTokens, CapturePayment, CreatePayment, CreateRefund

VALID = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}


def test_currency_exponents_follow_iso_4217() -> None:
    assert money.exponent("EUR") == 2
    assert money.exponent("JPY") == 0
    assert money.exponent("KWD") == 3
    assert money.exponent("CLF") == 4


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(12345, "EUR", "123.45"), (500, "JPY", "500"), (1000, "KWD", "1.000"), (5, "USD", "0.05")],
)
def test_minor_units_render_as_decimal_with_the_currency_exponent(
    amount: int, currency: str, shown: str
) -> None:
    assert money.to_decimal(amount, currency) == shown


def test_a_valid_sale_defaults_to_capture() -> None:
    assert CreatePayment.model_validate(VALID).capture is True


@given(st.from_regex(r"\Atok_[A-Za-z0-9_]{1,40}\Z"))
def test_a_plain_token_is_the_sandbox_token_exactly_as_if_it_had_been_written_out(
    token: str,
) -> None:
    written_out = AcquirerTokens.model_validate(
        {"type": "acquirer_tokens", "tokens": {"sandbox": token}}
    )
    method = CreatePayment.model_validate(VALID | {"payment_method": token}).method
    assert method == written_out
    assert method.model_dump_json() == written_out.model_dump_json()


def test_a_whole_number_written_with_a_fraction_is_an_amount_as_json_schema_says() -> None:
    assert CreatePayment.model_validate(VALID | {"amount": 1299.0}).amount == 1299


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "1299"},  # strings are not amounts
        {"amount": 12.99},  # nor are fractions
        {"amount": 1e13},  # nor whole numbers beyond the maximum
        {"amount": True},
        {"amount": 0},
        {"amount": -5},
        {"amount": money.MAX_AMOUNT + 1},
        {"currency": "eur"},
        {"currency": "XYZ"},
        {"payment_method": "ab"},
        {"payment_method": "tok visa"},
        {"capture": "yes"},
        {"surprise": 1},
        {"metadata": {f"k{i}": "v" for i in range(21)}},
        {"routing": {"bin": "12"}},
    ],
)
def test_invalid_create_requests_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CreatePayment.model_validate(VALID | change)


def test_capture_and_refund_amounts_are_optional_but_positive() -> None:
    assert CapturePayment.model_validate({}).amount is None
    assert CreateRefund.model_validate({"amount": 5}).amount == 5
    with pytest.raises(ValidationError):
        CapturePayment.model_validate({"amount": 0})
    with pytest.raises(ValidationError):
        CreateRefund.model_validate({"amount": 5, "extra": True})


@given(
    amount=st.integers(min_value=-money.MAX_AMOUNT, max_value=money.MAX_AMOUNT),
    currency=st.sampled_from(sorted(money.EXPONENTS)),
)
def test_the_decimal_shown_is_exactly_the_amount_scaled_by_the_exponent(
    amount: int, currency: str
) -> None:
    exp = money.exponent(currency)
    expected = Decimal(amount).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))
    assert money.to_decimal(amount, currency) == str(expected)
