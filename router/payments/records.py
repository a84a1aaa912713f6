"""What the stores keep: payments, refunds and the attempts journaled in them.

The write-ahead journal lives in the record it is about: a payment carries
the attempts of its create and the operations (captures, voids) run on it; a
refund carries its own attempt.  So the step that journals an attempt, the
step that settles it and the answer derived from it all touch one record, and
a retry, the reconciler or a webhook find everything they need in it.

Records never hold card data: a network token is summarized by its last four
digits, a vault or acquirer token by its first characters.
"""

from __future__ import annotations

import enum
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import Operation
from adapters.declines import Decline, DeclineCategory, DeclineCode
from router.payments.states import OperationState, PaymentState


def now_ms() -> int:
    return int(time.time() * 1000)


class Source(enum.StrEnum):
    """Who changed a record: kept with every event of its history."""

    LIVE = "live"  # the answer to the caller's own request
    REPLAY = "replay"  # a retry resolving what an earlier request left open
    RECONCILER = "reconciler"
    WEBHOOK = "webhook"
    ADMIN = "admin"


class AttemptOutcome(enum.StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    PENDING = "pending"
    NOT_PROCESSED = "not_processed"
    UNKNOWN = "unknown"  # still open: must be resolved at the same acquirer
    INTEGRATION_ERROR = "integration_error"


class DeclineInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: DeclineCode
    raw: str
    category: DeclineCategory

    @classmethod
    def of(cls, decline: Decline) -> DeclineInfo:
        return cls(code=decline.code, raw=decline.raw[:64], category=decline.category)


class Attempt(BaseModel):
    """One journal line, written BEFORE the first byte goes to the acquirer."""

    model_config = ConfigDict(frozen=True)

    acquirer: str
    acquirer_key: str
    operation: Operation
    started_ms: int
    outcome: AttemptOutcome | None = None  # None: written ahead, answer not yet known
    acquirer_reference: str | None = None
    reason: str | None = None  # why it was not processed / is unknown
    decline: DeclineInfo | None = None

    @property
    def open(self) -> bool:
        return self.outcome is None or self.outcome is AttemptOutcome.UNKNOWN


class OperationRecord(BaseModel):
    """A capture or void run on a payment, under the id its idempotency key derived."""

    id: str
    operation: Operation
    amount: int
    state: OperationState
    attempt: Attempt
    decline: DeclineInfo | None = None
    created_ms: int = Field(default_factory=now_ms)
    updated_ms: int = Field(default_factory=now_ms)

    @property
    def unresolved(self) -> bool:
        return self.state in (OperationState.PENDING, OperationState.UNKNOWN)


class MethodSummary(BaseModel):
    """What a payment was paid with, without anything that could charge it."""

    model_config = ConfigDict(frozen=True)

    type: str  # token | acquirer_tokens | vault | network_token
    hint: str = ""
    acquirers: list[str] = Field(default_factory=list)


class PaymentRecord(BaseModel):
    id: str
    tenant: str
    state: PaymentState
    livemode: bool = False
    amount: int
    currency: str
    capture: bool
    method: MethodSummary = MethodSummary(type="token")
    merchant_reference: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    shopper_reference: str | None = None
    acquirer: str | None = None
    acquirer_reference: str | None = None
    acquirer_key: str | None = None
    decline: DeclineInfo | None = None
    failure_reason: str | None = None
    next_action: dict[str, Any] | None = None
    network_transaction_id: str | None = None
    captured_amount: int = 0
    refunded_amount: int = 0
    refund_holds: dict[str, int] = Field(
        default_factory=dict, description="refund id -> amount reserved while it runs"
    )
    refund_ids: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    operations: list[OperationRecord] = Field(default_factory=list)
    created_ms: int = Field(default_factory=now_ms)
    updated_ms: int = Field(default_factory=now_ms)
    version: int = 0

    @property
    def refund_held(self) -> int:
        return sum(self.refund_holds.values())

    def available_to_refund(self) -> int:
        return self.captured_amount - self.refunded_amount - self.refund_held

    def open_attempt(self) -> tuple[int, Attempt] | None:
        """The newest create attempt whose fate is unknown: it pins the acquirer."""
        for index in range(len(self.attempts) - 1, -1, -1):
            if self.attempts[index].open:
                return index, self.attempts[index]
        return None

    def last_attempt_at(self, acquirer: str) -> int | None:
        """The index of the newest create attempt at ``acquirer`` (the one an
        answer from it -- a webhook, the shopper's return -- settles)."""
        for index in range(len(self.attempts) - 1, -1, -1):
            if self.attempts[index].acquirer == acquirer:
                return index
        return None

    def operation(self, op_id: str) -> OperationRecord | None:
        return next((op for op in self.operations if op.id == op_id), None)

    def open_operation(self) -> OperationRecord | None:
        """The capture or void that holds the payment while it runs (at most one)."""
        return next((op for op in self.operations if op.unresolved), None)


class RefundRecord(BaseModel):
    id: str
    payment_id: str
    tenant: str
    livemode: bool = False
    amount: int
    currency: str
    state: OperationState
    acquirer: str
    acquirer_reference: str | None = None
    attempt: Attempt | None = None
    decline: DeclineInfo | None = None
    reason: str | None = None
    merchant_reference: str | None = None
    created_ms: int = Field(default_factory=now_ms)
    updated_ms: int = Field(default_factory=now_ms)
    version: int = 0

    @property
    def unresolved(self) -> bool:
        return self.state in (OperationState.PENDING, OperationState.UNKNOWN)


Record = PaymentRecord | RefundRecord


class StoredResponse(BaseModel):
    status: int
    body: str
    headers: dict[str, str] = Field(default_factory=dict)
