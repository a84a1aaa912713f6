"""The state machines of payments and of the operations run on them.

The tables here govern: every state change of a payment goes through
:func:`move`, and every change of a refund, capture or void through
:func:`move_operation`, which refuse a move the table does not list (a bug
guard: it means an applier asked for something impossible).  Which operation
may start from which payment state is :data:`OPERATION_FROM`; an illegal
request becomes a 409 whose code names the operation and the state it hit.
"""

from __future__ import annotations

import enum
from typing import Protocol

from adapters.base import Operation
from router.problems import Problem


class PaymentState(enum.StrEnum):
    PENDING = "pending"  # in flight, or waiting for the shopper / acquirer
    UNKNOWN = "unknown"  # may have moved money; the reconciler will find out
    AUTHORIZED = "authorized"
    CAPTURE_PENDING = "capture_pending"  # a sale authorised; its capture is still to come
    CAPTURED = "captured"
    CAPTURE_FAILED = "capture_failed"  # the capture of a sale was refused after authorisation
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    DECLINED = "declined"
    FAILED = "failed"  # provably never processed anywhere


class OperationState(enum.StrEnum):
    """A refund, capture or void."""

    PENDING = "pending"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    FAILED = "failed"  # provably not processed


S = PaymentState
OS = OperationState

TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    S.PENDING: frozenset(
        {S.AUTHORIZED, S.CAPTURE_PENDING, S.CAPTURED, S.DECLINED, S.FAILED, S.UNKNOWN}
    ),
    # UNKNOWN -> FAILED only on the acquirer's authoritative word that it never
    # received the request (see Adapter.status_is_authoritative)
    S.UNKNOWN: frozenset(
        {S.PENDING, S.AUTHORIZED, S.CAPTURE_PENDING, S.CAPTURED, S.DECLINED, S.FAILED}
    ),
    S.AUTHORIZED: frozenset({S.CAPTURED, S.VOIDED}),
    S.CAPTURE_PENDING: frozenset({S.CAPTURED, S.CAPTURE_FAILED, S.VOIDED}),
    S.CAPTURED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.CAPTURE_FAILED: frozenset({S.VOIDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.VOIDED: frozenset(),
    S.DECLINED: frozenset(),
    # FAILED means provably processed nowhere, so a retry under the same
    # idempotency key may start over
    S.FAILED: frozenset({S.PENDING}),
}

OPERATION_TRANSITIONS: dict[OperationState, frozenset[OperationState]] = {
    OS.PENDING: frozenset({OS.UNKNOWN, OS.SUCCEEDED, OS.DECLINED, OS.FAILED}),
    OS.UNKNOWN: frozenset({OS.PENDING, OS.SUCCEEDED, OS.DECLINED, OS.FAILED}),
    OS.SUCCEEDED: frozenset(),
    OS.DECLINED: frozenset(),
    OS.FAILED: frozenset({OS.PENDING}),  # a retry of one that provably never ran
}

#: operation -> the payment states it may start from
OPERATION_FROM: dict[Operation, frozenset[PaymentState]] = {
    Operation.CAPTURE: frozenset({S.AUTHORIZED}),
    Operation.VOID: frozenset({S.AUTHORIZED, S.CAPTURE_PENDING, S.CAPTURE_FAILED}),
    Operation.REFUND: frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED}),
    Operation.AUTHENTICATE: frozenset({S.PENDING}),
}

#: states in which a payment still waits for an acquirer's answer
UNRESOLVED = frozenset({S.PENDING, S.UNKNOWN, S.CAPTURE_PENDING})


class IllegalTransition(Exception):
    """A bug guard: an applier asked for a move the table forbids."""

    def __init__(self, current: enum.StrEnum, new: enum.StrEnum) -> None:
        super().__init__(f"illegal transition {current} -> {new}")
        self.current, self.new = current, new


def can_move(current: PaymentState, new: PaymentState) -> bool:
    return new is current or new in TRANSITIONS[current]


class _HasState(Protocol):
    state: PaymentState


class _HasOperationState(Protocol):
    state: OperationState


def move(record: _HasState, new: PaymentState) -> None:
    """The one way a payment's state changes."""
    if not can_move(record.state, new):
        raise IllegalTransition(record.state, new)
    record.state = new


def move_operation(record: _HasOperationState, new: OperationState) -> None:
    """The one way a refund's, capture's or void's state changes."""
    if new is not record.state and new not in OPERATION_TRANSITIONS[record.state]:
        raise IllegalTransition(record.state, new)
    record.state = new


def require(operation: Operation, current: PaymentState) -> None:
    """409 unless ``operation`` may start from ``current``."""
    if current not in OPERATION_FROM[operation]:
        allowed = ", ".join(sorted(OPERATION_FROM[operation]))
        raise Problem(
            409,
            f"{operation}_not_allowed",
            f"cannot {operation} a payment that is {current}; allowed from: {allowed}",
            payment_status=str(current),
        )
