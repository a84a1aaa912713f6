"""Routing: which acquirers a new payment may go to, and in which order.

Rules are tried in their written order; the first whose every condition holds
chooses the pool and the balancer.  Acquirers that are drained, unhealthy,
ejected or behind an open breaker leave the pool, unless so few are left that
the pool is below the panic threshold: then health is ignored (better to try
than to refuse everything because the probes are wrong).  The rule's fallback
chain follows the pool.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from router.acquirers import RoutingState
from router.balancers import Balancer, make_balancer
from router.config import RoutingConfig, RoutingRule, RuleMatch


@dataclass(frozen=True)
class RouteInput:
    amount: int
    currency: str
    caller: str
    payment_method: str
    card_brand: str | None = None
    bin: str | None = None
    country: str | None = None
    preferred: str | None = None
    live: bool = False  # a test key reaches only test-mode acquirers, a live key only live


@dataclass
class RoutePlan:
    candidates: list[str]
    rule: str
    balancer: str
    notes: list[str] = field(default_factory=list)


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
        fnmatch.fnmatchcase(inp.payment_method, p) for p in match.payment_method
    )


class RoutingTable:
    """Built once per config version; holds the balancers' state."""

    DEFAULT_RULE = "(default)"

    def __init__(
        self,
        config: RoutingConfig,
        acquirers: Mapping[str, RoutingState],
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.acquirers = acquirers
        rng = rng or random.Random()
        self._rules = [
            *config.rules,
            RoutingRule.model_construct(
                name=self.DEFAULT_RULE,
                match=RuleMatch(),
                pool=config.default,
                balancer=None,
                fallback=[],
            ),
        ]
        self._balancers: dict[str, tuple[str, Balancer]] = {}
        for rule in self._rules:
            kind = rule.balancer or config.balancer
            self._balancers[rule.name] = (kind, make_balancer(kind, rng, config.exploration))

    def _usable(self, names: list[str], notes: list[str], label: str, live: bool) -> list[str]:
        known = [
            n for n in names if n in self.acquirers and self.acquirers[n].test_mode is not live
        ]
        routable = [n for n in known if self.acquirers[n].routable()]
        for name in known:
            if name not in routable:
                notes.append(f"{name} left out: {self.why_not(name)}")
        if known and len(routable) / len(known) < self.config.panic_threshold:
            routable = [n for n in known if not self.acquirers[n].drained]
            notes.append(
                f"{label}: panic mode, fewer than "
                f"{self.config.panic_threshold:.0%} healthy, health ignored"
            )
        return routable

    def why_not(self, name: str) -> str:
        acquirer = self.acquirers[name]
        if acquirer.drained:
            return "drained"
        if not acquirer.health.healthy:
            return f"failing health checks ({acquirer.health.last_probe_error})"
        if acquirer.health.ejected():
            return "ejected as an outlier"
        return f"breaker {acquirer.breaker.state}"

    def plan(self, inp: RouteInput) -> RoutePlan:
        rule = next(r for r in self._rules if matches(r.match, inp))
        kind, balancer = self._balancers[rule.name]
        notes: list[str] = []
        pool = self._usable(rule.pool, notes, "pool", inp.live)
        ordered = balancer.order(pool, self.acquirers) if pool else []
        fallback = [
            n for n in self._usable(rule.fallback, notes, "fallback", inp.live) if n not in ordered
        ]
        candidates = ordered + sorted(fallback, key=lambda n: self.acquirers[n].priority)
        if inp.preferred is not None:
            if inp.preferred in candidates:
                candidates.remove(inp.preferred)
                candidates.insert(0, inp.preferred)
                notes.append(f"{inp.preferred} first: routing hint")
            else:
                notes.append(f"hint {inp.preferred} ignored: not a usable candidate here")
        return RoutePlan(candidates, rule.name, kind, notes)
