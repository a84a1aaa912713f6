"""The state machines govern: every move goes through the table, and an
operation outside its states answers 409 with a code naming the state."""

from __future__ import annotations

import pytest

from adapters.base import AcquirerResult, Operation, ResultStatus
from router.payments import outcomes
from router.payments.records import Attempt, PaymentRecord
from router.payments.states import (
    OPERATION_FROM,
    OPERATION_TRANSITIONS,
    TRANSITIONS,
    IllegalTransition,
    OperationState,
    PaymentState,
    move,
    require,
)
from router.problems import Problem

S = PaymentState


def _payment(state: PaymentState, capture: bool = True) -> PaymentRecord:
    return PaymentRecord(
        id="pay_00" + "0" * 22,
        tenant="t",
        state=state,
        amount=100,
        currency="EUR",
        capture=capture,
        attempts=[Attempt(acquirer="a", acquirer_key="k", operation=Operation.SALE, started_ms=1)],
    )


def test_every_state_has_a_transition_row() -> None:
    assert set(TRANSITIONS) == set(PaymentState)
    assert set(OPERATION_TRANSITIONS) == set(OperationState)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.PENDING, S.AUTHORIZED),
        (S.PENDING, S.UNKNOWN),
        (S.UNKNOWN, S.CAPTURED),
        (S.AUTHORIZED, S.CAPTURED),
        (S.AUTHORIZED, S.VOIDED),
        (S.CAPTURE_PENDING, S.CAPTURED),
        (S.CAPTURE_PENDING, S.CAPTURE_FAILED),
        (S.CAPTURED, S.PARTIALLY_REFUNDED),
        (S.PARTIALLY_REFUNDED, S.REFUNDED),
        (S.FAILED, S.PENDING),
    ],
)
def test_legal_transitions(current: PaymentState, new: PaymentState) -> None:
    record = _payment(current)
    move(record, new)
    assert record.state is new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.VOIDED, S.CAPTURED),
        (S.CAPTURED, S.VOIDED),
        (S.DECLINED, S.AUTHORIZED),
        (S.REFUNDED, S.CAPTURED),
        (S.UNKNOWN, S.VOIDED),
        (S.AUTHORIZED, S.PENDING),
        (S.CAPTURE_FAILED, S.CAPTURED),
    ],
)
def test_illegal_transitions_are_refused(current: PaymentState, new: PaymentState) -> None:
    with pytest.raises(IllegalTransition):
        move(_payment(current), new)


@pytest.mark.parametrize(
    ("operation", "state"),
    [
        (Operation.CAPTURE, S.CAPTURED),
        (Operation.VOID, S.CAPTURED),
        (Operation.REFUND, S.AUTHORIZED),
        (Operation.CAPTURE, S.UNKNOWN),
        (Operation.REFUND, S.REFUNDED),
        (Operation.REFUND, S.CAPTURE_PENDING),
    ],
)
def test_operations_outside_their_states_answer_409(
    operation: Operation, state: PaymentState
) -> None:
    with pytest.raises(Problem) as caught:
        require(operation, state)
    assert caught.value.status == 409
    assert caught.value.code == f"{operation}_not_allowed"
    assert caught.value.extra["payment_status"] == state


def test_operations_in_their_states_are_allowed() -> None:
    for operation, states in OPERATION_FROM.items():
        for state in states:
            require(operation, state)


def test_unknown_becomes_failed_only_through_the_acquirers_confirmation() -> None:
    payment = _payment(S.PENDING)
    outcomes.mark_unknown(payment, 0, "read_timeout")
    assert payment.state is S.UNKNOWN
    assert outcomes.mark_failed(payment, "no_acquirer_available") is False
    assert outcomes.confirm_not_processed(payment, "acquirer_confirms_not_processed")
    assert (payment.state, payment.failure_reason) == (S.FAILED, "acquirer_confirms_not_processed")


def test_an_answer_never_moves_a_payment_back() -> None:
    payment = _payment(S.PENDING)
    outcomes.apply_create(payment, 0, AcquirerResult(ResultStatus.APPROVED, "ch_1", captured=True))
    assert payment.state is S.CAPTURED
    late = AcquirerResult(ResultStatus.PENDING, "ch_1")
    assert outcomes.apply_create(payment, 0, late) is False or payment.state is S.CAPTURED
    assert payment.state is S.CAPTURED


def test_a_sale_answered_authorised_waits_for_its_capture() -> None:
    payment = _payment(S.PENDING)
    outcomes.apply_create(payment, 0, AcquirerResult(ResultStatus.APPROVED, "psp", captured=False))
    assert (payment.state, payment.captured_amount) == (S.CAPTURE_PENDING, 0)
    outcomes.apply_sale_capture(payment, AcquirerResult(ResultStatus.APPROVED, "psp"))
    assert (payment.state, payment.captured_amount) == (S.CAPTURED, 100)
