"""The payment state machine refuses illegal moves with a 409 and a clear code."""

from __future__ import annotations

import pytest

from router.problems import Problem
from router.states import (
    TRANSITIONS,
    IllegalTransition,
    PaymentState,
    check_transition,
    require,
)

S = PaymentState


def test_every_state_has_a_transition_row() -> None:
    assert set(TRANSITIONS) == set(PaymentState)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.PENDING, S.AUTHORIZED),
        (S.PENDING, S.UNKNOWN),
        (S.UNKNOWN, S.CAPTURED),
        (S.AUTHORIZED, S.CAPTURED),
        (S.AUTHORIZED, S.VOIDED),
        (S.CAPTURED, S.PARTIALLY_REFUNDED),
        (S.PARTIALLY_REFUNDED, S.REFUNDED),
        (S.FAILED, S.PENDING),
    ],
)
def test_legal_transitions(current: PaymentState, new: PaymentState) -> None:
    check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.VOIDED, S.CAPTURED),
        (S.CAPTURED, S.VOIDED),
        (S.DECLINED, S.AUTHORIZED),
        (S.REFUNDED, S.CAPTURED),
        (S.UNKNOWN, S.VOIDED),
        (S.AUTHORIZED, S.PENDING),
    ],
)
def test_illegal_transitions_are_refused(current: PaymentState, new: PaymentState) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(current, new)


@pytest.mark.parametrize(
    ("operation", "state"),
    [
        ("capture", S.CAPTURED),
        ("void", S.CAPTURED),
        ("refund", S.AUTHORIZED),
        ("capture", S.UNKNOWN),
        ("refund", S.REFUNDED),
    ],
)
def test_operations_outside_their_states_answer_409(operation: str, state: PaymentState) -> None:
    with pytest.raises(Problem) as caught:
        require(operation, state)
    assert caught.value.status == 409
    assert caught.value.code == f"{operation}_not_allowed"
    assert caught.value.extra["payment_status"] == state


def test_operations_in_their_states_are_allowed() -> None:
    require("capture", S.AUTHORIZED)
    require("void", S.AUTHORIZED)
    require("refund", S.PARTIALLY_REFUNDED)


def test_unknown_becomes_failed_only_through_the_acquirers_confirmation() -> None:
    from router import outcomes
    from router.records import PaymentRecord

    payment = PaymentRecord(
        id="pay_1", caller="c", state=S.UNKNOWN, amount=1, currency="EUR", capture=True
    )
    assert outcomes.mark_failed(payment.model_copy(), "no_acquirer_available") is None
    confirmed = outcomes.confirm_not_processed(payment.model_copy())
    assert confirmed is not None
    assert (confirmed.state, confirmed.failure_reason) == (
        S.FAILED,
        "acquirer_confirms_not_processed",
    )
