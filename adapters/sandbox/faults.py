"""Fault rules of the sandbox acquirer.

A fault is decided once per *processing* of a request: a replay of an
idempotency key the sandbox already answered is served from its idempotency
store without faults chosen by test tokens, which is what lets the router's
same-key replay resolve a "timeout after processing".
"""

from __future__ import annotations

import enum
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FaultMode(enum.StrEnum):
    LATENCY = "latency"  # delay, then behave normally
    UNAVAILABLE = "unavailable"  # 503 + Transient-Error: true, NOT processed
    ERROR_500 = "error_500"  # processed, then answered 500
    TIMEOUT_AFTER_PROCESSING = "timeout_after_processing"  # processed, reply never comes in time
    RESET_MID_RESPONSE = "reset_mid_response"  # processed, connection cut inside the body
    REFUSE_CONNECTIONS = "refuse_connections"  # listener closed for a while
    GARBLED = "garbled"  # processed, 200 with a body that is not JSON
    UNHEALTHY = "unhealthy"  # health endpoint answers 503
    DECLINE = "decline"  # the issuer says no (decline_code), whatever the token
    DROP = "drop"  # connection cut BEFORE processing: ambiguous to the caller, nothing happened


#: modes that strike before anything is processed
BEFORE_PROCESSING = frozenset({FaultMode.UNAVAILABLE, FaultMode.DROP, FaultMode.REFUSE_CONNECTIONS})

#: modes after which the sandbox has already moved money
PROCESSED_MODES = frozenset(
    {
        FaultMode.ERROR_500,
        FaultMode.TIMEOUT_AFTER_PROCESSING,
        FaultMode.RESET_MID_RESPONSE,
        FaultMode.GARBLED,
    }
)


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: FaultMode
    rate: float = Field(1.0, ge=0.0, le=1.0)
    count: int | None = Field(None, ge=1, description="apply this many times, then drop")
    latency_ms: int = Field(0, ge=0, le=120_000)
    hang_s: float = Field(30.0, gt=0, le=600, description="how long a timeout fault hangs")
    duration_s: float = Field(5.0, gt=0, le=600, description="refuse_connections window")
    applies_to: Literal["mutating", "all"] = "mutating"
    decline_code: str = Field("do_not_honor", pattern=r"^[a-z0-9_]{1,40}$")


class FaultBook:
    """The active rules, consumed as they fire."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int | None = None) -> None:
        self.rules: list[FaultRule] = list(rules or [])
        self._rng = random.Random(seed)

    def replace(self, rules: list[FaultRule]) -> None:
        self.rules = list(rules)

    def draw(self, *, mutating: bool, health: bool = False) -> list[FaultRule]:
        """Rules that fire for this request (latency first, then at most one failure)."""
        fired: list[FaultRule] = []
        failure_taken = False
        for rule in list(self.rules):
            if health != (rule.mode is FaultMode.UNHEALTHY):
                continue
            if not health and rule.applies_to == "mutating" and not mutating:
                continue
            is_failure = rule.mode is not FaultMode.LATENCY
            if is_failure and failure_taken:
                continue
            if self._rng.random() >= rule.rate:
                continue
            fired.append(rule)
            failure_taken = failure_taken or is_failure
            if rule.count is not None:
                remaining = rule.count - 1
                self.rules.remove(rule)
                if remaining > 0:
                    self.rules.append(rule.model_copy(update={"count": remaining}))
        return fired


def token_fault(token: str) -> FaultRule | None:
    """Test tokens ``tok_fault_<mode>`` inject a fault the first time the
    sandbox sees a request's idempotency key (a replay of it is served normally)."""
    prefix = "tok_fault_"
    if not token.startswith(prefix):
        return None
    try:
        mode = FaultMode(token[len(prefix) :])
    except ValueError:
        return None
    return FaultRule(
        mode=mode,
        latency_ms=2000 if mode is FaultMode.LATENCY else 0,
        duration_s=1.0,  # refuse_connections: long enough to outlast the router's replays
    )
