"""Every status an acquirer's published API can answer is mapped, for every
operation that can meet it: an unmapped status raises unexpected_status, and
then the reconciler can never settle that operation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from adapters.adyen.statuses import RESULT_CODES
from adapters.base import Operation
from adapters.checkout.statuses import STATUS_MAP as CHECKOUT_STATUSES
from adapters.stripe.statuses import STATUS_MAP as STRIPE_STATUSES
from tests import specs


def _enum(schema: str, spec: dict[str, Any]) -> set[str]:
    return set(spec["components"]["schemas"][schema]["properties"]["status"]["enum"])


def stripe_intent_statuses() -> set[str]:
    return set(specs.stripe()["payment_intent_status"]["enum"])


def stripe_refund_statuses() -> set[str]:
    """Stripe's refund status is documented in prose: the values in backticks."""
    text = specs.stripe()["refund_status"]["description"]
    return set(re.findall(r"`([a-z_]+)`", text))


@pytest.mark.parametrize(
    "operation", [Operation.AUTHORIZE, Operation.SALE, Operation.CAPTURE, Operation.VOID]
)
def test_every_stripe_payment_intent_status_is_mapped_for_each_operation(
    operation: Operation,
) -> None:
    assert stripe_intent_statuses() == {
        "canceled",
        "processing",
        "requires_action",
        "requires_capture",
        "requires_confirmation",
        "requires_payment_method",
        "succeeded",
    }
    assert stripe_intent_statuses() <= set(STRIPE_STATUSES[operation])


def test_every_stripe_refund_status_is_mapped() -> None:
    assert stripe_refund_statuses() == {"pending", "succeeded", "failed", "canceled"}
    assert stripe_refund_statuses() <= set(STRIPE_STATUSES[Operation.REFUND])


@pytest.mark.parametrize("schema", ["PaymentResponse", "PaymentDetailsResponse"])
def test_every_adyen_result_code_is_mapped(schema: str) -> None:
    codes = specs.adyen()["components"]["schemas"][schema]["properties"]["resultCode"]["enum"]
    assert len(codes) >= 10
    assert set(codes) <= set(RESULT_CODES)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ("PaymentResponse", 6),  # the create's answer
        ("PaymentDetails", 12),  # GET /payments/{id}: the status queries
    ],
)
def test_every_checkout_payment_status_is_mapped(schema: str, expected: int) -> None:
    statuses = _enum(schema, specs.checkout())
    assert len(statuses) == expected
    assert statuses <= set(CHECKOUT_STATUSES)
