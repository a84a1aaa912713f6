"""The public API's request and response shapes (pydantic v2, extra=forbid).

Requests are strict: an amount is an integer in minor units, never a string or
a float; unknown fields are refused so a typo cannot silently do nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from router import money
from router.records import PaymentRecord, RefundRecord
from router.states import PaymentState, RefundState


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Amount = Annotated[StrictInt, Field(gt=0, le=money.MAX_AMOUNT, description="minor units")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
Token = Annotated[
    str,
    Field(
        min_length=4,
        max_length=128,
        pattern=r"^[A-Za-z][A-Za-z0-9_\-.:]*$",
        description="payment method TOKEN from the vault; raw card numbers are refused",
    ),
]
Reference = Annotated[str, Field(min_length=1, max_length=128)]
Metadata = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, Field(max_length=500)]],
    Field(max_length=20),
]


class RoutingHints(Strict):
    acquirer: str | None = Field(None, description="preferred acquirer, tried first")
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    card_brand: (
        Literal["visa", "mastercard", "amex", "discover", "jcb", "unionpay", "other"] | None
    ) = None
    bin: Annotated[str, Field(pattern=r"^[0-9]{6,8}$")] | None = None


class CreatePayment(Strict):
    amount: Amount
    currency: Currency
    payment_method: Token
    capture: StrictBool = Field(True, description="true: sale; false: authorize only")
    merchant_reference: Reference | None = None
    metadata: Metadata = Field(default_factory=dict)
    routing: RoutingHints | None = None

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in money.EXPONENTS:
            raise ValueError(f"{value} is not an active ISO 4217 currency")
        return value


class CapturePayment(Strict):
    amount: Amount | None = Field(None, description="omit to capture the full authorization")


class VoidPayment(Strict):
    pass


class CreateRefund(Strict):
    amount: Amount | None = Field(None, description="omit to refund what is left")
    reason: Annotated[str, Field(max_length=200)] | None = None
    merchant_reference: Reference | None = None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


class NextAction(BaseModel):
    type: Literal["redirect"] = "redirect"
    url: str


class PaymentView(BaseModel):
    id: str
    status: PaymentState
    livemode: bool
    amount: int
    amount_decimal: str
    currency: str
    capture: bool
    captured_amount: int
    refunded_amount: int
    acquirer: str | None
    acquirer_reference: str | None
    decline_code: str | None
    failure_reason: str | None
    pending_operation: str | None
    next_action: NextAction | None
    merchant_reference: str | None
    metadata: dict[str, str]
    refunds: list[str]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, p: PaymentRecord) -> PaymentView:
        return cls(
            id=p.id,
            status=p.state,
            livemode=p.livemode,
            amount=p.amount,
            amount_decimal=money.to_decimal(p.amount, p.currency),
            currency=p.currency,
            capture=p.capture,
            captured_amount=p.captured_amount,
            refunded_amount=p.refunded_amount,
            acquirer=p.acquirer,
            acquirer_reference=p.acquirer_reference,
            decline_code=p.decline_code,
            failure_reason=p.failure_reason,
            pending_operation=p.op_lock.operation if p.op_lock else None,
            next_action=NextAction(url=p.redirect_url) if p.redirect_url else None,
            merchant_reference=p.merchant_reference,
            metadata=p.metadata,
            refunds=p.refund_ids,
            created_at=_iso(p.created_ms),
            updated_at=_iso(p.updated_ms),
        )


class RefundView(BaseModel):
    id: str
    payment_id: str
    status: RefundState
    amount: int
    currency: str
    acquirer: str
    acquirer_reference: str | None
    decline_code: str | None
    reason: str | None
    merchant_reference: str | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, r: RefundRecord) -> RefundView:
        return cls(
            id=r.id,
            payment_id=r.payment_id,
            status=r.state,
            amount=r.amount,
            currency=r.currency,
            acquirer=r.acquirer,
            acquirer_reference=r.acquirer_reference,
            decline_code=r.decline_code,
            reason=r.reason,
            merchant_reference=r.merchant_reference,
            created_at=_iso(r.created_ms),
            updated_at=_iso(r.updated_ms),
        )


class ProblemView(BaseModel):
    type: str
    title: str
    status: int
    code: str
    detail: str
