"""What the stores keep: idempotency records with their attempt journal,
payments and refunds.  Serialised with pydantic so the memory and Redis
stores hold byte-identical documents."""

from __future__ import annotations

import enum
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from router.states import PaymentState, RefundState


def now_ms() -> int:
    return int(time.time() * 1000)


class AttemptOutcome(enum.StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    PENDING = "pending"
    NOT_PROCESSED = "not_processed"
    UNKNOWN = "unknown"  # still open: must be resolved at the same acquirer
    INTEGRATION_ERROR = "integration_error"


#: outcomes after which another acquirer may be tried for the same payment
CLOSED_OUTCOMES = frozenset(
    {
        AttemptOutcome.APPROVED,
        AttemptOutcome.DECLINED,
        AttemptOutcome.PENDING,
        AttemptOutcome.NOT_PROCESSED,
        AttemptOutcome.INTEGRATION_ERROR,
    }
)


class Attempt(BaseModel):
    """One journal line, written BEFORE the first byte goes to the acquirer."""

    model_config = ConfigDict(frozen=True)

    acquirer: str
    acquirer_key: str
    operation: str
    started_ms: int
    outcome: AttemptOutcome | None = None  # None: written ahead, answer not yet known
    acquirer_reference: str | None = None
    reason: str | None = None

    @property
    def open(self) -> bool:
        return self.outcome is None or self.outcome is AttemptOutcome.UNKNOWN


class StoredResponse(BaseModel):
    status: int
    body: str
    headers: dict[str, str] = Field(default_factory=dict)


class IdemRecord(BaseModel):
    fingerprint: str
    resource_id: str
    owner: str | None = None
    lease_until_ms: int = 0
    response: StoredResponse | None = None
    attempts: list[Attempt] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.response is not None

    def open_attempt(self) -> tuple[int, Attempt] | None:
        """The newest attempt whose fate is unknown: it pins the acquirer."""
        for index in range(len(self.attempts) - 1, -1, -1):
            if self.attempts[index].open:
                return index, self.attempts[index]
        return None


class OpLock(BaseModel):
    """A capture or void owns the payment while it runs, so the two can never
    race; it stays while the outcome is unknown, for the reconciler."""

    operation: str
    scope: str
    amount: int = 0
    acquirer_key: str | None = None


class PaymentRecord(BaseModel):
    model_config = ConfigDict(validate_assignment=False)

    id: str
    caller: str
    state: PaymentState
    livemode: bool = False
    amount: int
    currency: str
    capture: bool
    payment_method_hint: str = ""
    merchant_reference: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    acquirer: str | None = None
    acquirer_reference: str | None = None
    acquirer_key: str | None = None
    decline_code: str | None = None
    failure_reason: str | None = None
    redirect_url: str | None = None
    captured_amount: int = 0
    refunded_amount: int = 0
    refund_holds: dict[str, int] = Field(
        default_factory=dict, description="refund id -> amount reserved while it runs"
    )
    op_lock: OpLock | None = None
    refund_ids: list[str] = Field(default_factory=list)
    created_ms: int = Field(default_factory=now_ms)
    updated_ms: int = Field(default_factory=now_ms)
    version: int = 0

    @property
    def refund_held(self) -> int:
        return sum(self.refund_holds.values())

    def available_to_refund(self) -> int:
        return self.captured_amount - self.refunded_amount - self.refund_held


class RefundRecord(BaseModel):
    id: str
    payment_id: str
    caller: str
    amount: int
    currency: str
    state: RefundState
    acquirer: str
    acquirer_reference: str | None = None
    acquirer_key: str | None = None
    decline_code: str | None = None
    reason: str | None = None
    merchant_reference: str | None = None
    created_ms: int = Field(default_factory=now_ms)
    updated_ms: int = Field(default_factory=now_ms)
    version: int = 0


def dump(record: BaseModel) -> str:
    return record.model_dump_json(exclude_none=False)


def fields(record: BaseModel) -> dict[str, Any]:
    return record.model_dump(mode="json")
