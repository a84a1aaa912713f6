"""Routing rules: what the config says, and whether a payment matches one.

Rules are tried in their written order; the first whose every condition holds
chooses the pool, the balancer and the fallback chain.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.declines import DeclineCategory, DeclineCode

if TYPE_CHECKING:
    from router.payments.models import CreatePayment


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Balancer = Literal["priority", "weighted", "least_latency", "success_rate"]


class AmountRange(Strict):
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> AmountRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("amount.min is above amount.max")
        return self


class BinRange(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: Annotated[str, Field(alias="from", pattern=r"^[0-9]{6,8}$")]
    end: Annotated[str, Field(alias="to", pattern=r"^[0-9]{6,8}$")]

    @model_validator(mode="after")
    def _ordered(self) -> BinRange:
        if len(self.start) != len(self.end) or self.start > self.end:
            raise ValueError("a BIN range needs from <= to, of the same length")
        return self

    def contains(self, bin_: str) -> bool:
        prefix = bin_[: len(self.start)]
        return len(prefix) == len(self.start) and self.start <= prefix <= self.end


class RuleMatch(Strict):
    """Every given condition must hold; an omitted one matches anything."""

    currency: list[str] | None = None
    amount: AmountRange | None = None
    card_brand: list[str] | None = None
    bin: list[BinRange] | None = None
    country: list[str] | None = None
    caller: list[str] | None = None
    payment_method: list[str] | None = Field(
        None, description="globs on the tokens, or on vault:<name> / network_token:<scheme>"
    )


class RoutingRule(Strict):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")]
    match: RuleMatch = RuleMatch()
    pool: list[str] = Field(min_length=1)
    balancer: Balancer | None = None
    fallback: list[str] = Field(default_factory=list, description="tried after the pool")


class RoutingConfig(Strict):
    rules: list[RoutingRule] = Field(default_factory=list, description="first match wins")
    default: list[str] = Field(min_length=1, description="pool when no rule matches")
    balancer: Balancer = "priority"
    soft_decline_codes: list[DeclineCode] = Field(
        default_factory=list,
        description="normalized decline codes worth one more try at another acquirer",
    )
    soft_decline_categories: list[DeclineCategory] = Field(
        default_factory=list, description="or whole categories of them (soft)"
    )
    max_soft_decline_retries: int = Field(1, ge=0, le=3)
    panic_threshold: float = Field(
        0.5, ge=0, le=1, description="below this healthy share, health is ignored"
    )
    exploration: float = Field(
        0.05,
        ge=0,
        le=1,
        description="share of requests sent to a random acquirer (least_latency and "
        "success_rate balancers), so a recovered one is noticed",
    )


@dataclass(frozen=True)
class RouteInput:
    amount: int
    currency: str
    caller: str  # the caller's name in the config (test and live keys alike)
    #: what match.payment_method globs see: the tokens, or vault:<name>, network_token:<scheme>
    payment_methods: tuple[str, ...] = ()
    card_brand: str | None = None
    bin: str | None = None
    country: str | None = None
    preferred: str | None = None
    live: bool = False  # a test key reaches only test-mode acquirers, a live key only live
    #: acquirers the payment method cannot be used at, with the reason
    ineligible: Mapping[str, str] = field(default_factory=dict)


def route_input(
    caller: str,
    request: CreatePayment,
    live: bool = False,
    *,
    methods: tuple[str, ...] = (),
    ineligible: Mapping[str, str] | None = None,
) -> RouteInput:
    hints = request.routing
    return RouteInput(
        amount=request.amount,
        currency=request.currency,
        caller=caller,
        payment_methods=methods,
        ineligible=dict(ineligible or {}),
        card_brand=hints.card_brand if hints else None,
        bin=hints.bin if hints else None,
        country=hints.country if hints else None,
        preferred=hints.acquirer if hints else None,
        live=live,
    )


def matches(match: RuleMatch, inp: RouteInput) -> bool:
    if match.currency is not None and inp.currency not in match.currency:
        return False
    if match.amount is not None:
        if match.amount.min is not None and inp.amount < match.amount.min:
            return False
        if match.amount.max is not None and inp.amount > match.amount.max:
            return False
    if match.card_brand is not None and inp.card_brand not in match.card_brand:
        return False
    if match.bin is not None and (
        inp.bin is None or not any(r.contains(inp.bin) for r in match.bin)
    ):
        return False
    if match.country is not None and inp.country not in match.country:
        return False
    if match.caller is not None and inp.caller not in match.caller:
        return False
    return match.payment_method is None or any(
        fnmatch.fnmatchcase(label, p) for label in inp.payment_methods for p in match.payment_method
    )
