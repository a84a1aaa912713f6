"""The payment state machine: which operation may run in which state.

The table is the single source of truth; handlers ask :func:`require` and an
illegal request becomes a 409 with a code naming the state it hit.
"""

from __future__ import annotations

import enum

from router.problems import Problem


class PaymentState(enum.StrEnum):
    PENDING = "pending"  # in flight, or waiting for the shopper / acquirer
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    DECLINED = "declined"
    FAILED = "failed"  # provably never processed anywhere
    UNKNOWN = "unknown"  # may have moved money; the reconciler will find out


class RefundState(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    FAILED = "failed"
    UNKNOWN = "unknown"


S = PaymentState

TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    S.PENDING: frozenset({S.AUTHORIZED, S.CAPTURED, S.DECLINED, S.FAILED, S.UNKNOWN, S.PENDING}),
    # UNKNOWN -> FAILED only on the acquirer's authoritative word that it never
    # received the request (see Adapter.status_is_authoritative)
    S.UNKNOWN: frozenset({S.AUTHORIZED, S.CAPTURED, S.DECLINED, S.PENDING, S.UNKNOWN, S.FAILED}),
    S.AUTHORIZED: frozenset({S.CAPTURED, S.VOIDED}),
    S.CAPTURED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.VOIDED: frozenset(),
    S.DECLINED: frozenset(),
    # FAILED means provably processed nowhere, so a retry under the same
    # idempotency key may start over
    S.FAILED: frozenset({S.PENDING}),
}

#: operation -> states it may start from
OPERATION_FROM: dict[str, frozenset[PaymentState]] = {
    "capture": frozenset({S.AUTHORIZED}),
    "void": frozenset({S.AUTHORIZED}),
    "refund": frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED}),
}

FINAL_FROM_ACQUIRER = frozenset({S.AUTHORIZED, S.CAPTURED, S.DECLINED})


def can_transition(current: PaymentState, new: PaymentState) -> bool:
    return new in TRANSITIONS[current]


def check_transition(current: PaymentState, new: PaymentState) -> None:
    if not can_transition(current, new):
        raise IllegalTransition(current, new)


def require(operation: str, current: PaymentState) -> None:
    """409 unless ``operation`` may start from ``current``."""
    if current not in OPERATION_FROM[operation]:
        allowed = ", ".join(sorted(OPERATION_FROM[operation]))
        raise Problem(
            409,
            f"{operation}_not_allowed",
            f"cannot {operation} a payment that is {current}; allowed from: {allowed}",
            payment_status=str(current),
        )


class IllegalTransition(Exception):
    """A bug guard: the orchestrator asked for a move the table forbids."""

    def __init__(self, current: PaymentState, new: PaymentState) -> None:
        super().__init__(f"illegal transition {current} -> {new}")
        self.current, self.new = current, new
