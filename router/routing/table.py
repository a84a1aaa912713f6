"""Routing: which acquirers a new payment may go to, and in which order.

Rules are tried in their written order; the first whose every condition holds
chooses the pool and the balancer.  Acquirers the payment method cannot be
used at leave it first (whatever their health).  Acquirers that are drained, unhealthy,
ejected or behind an open breaker leave the pool, unless so few are left that
the pool is below the panic threshold: then health is ignored (better to try
than to refuse everything because the probes are wrong).  The rule's fallback
chain follows the pool.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from router.routing.acquirers import RoutingState
from router.routing.balancers import Balancer, make_balancer
from router.routing.rules import RouteInput, RoutingConfig, RoutingRule, RuleMatch, matches


@dataclass
class RoutePlan:
    candidates: list[str]
    rule: str
    balancer: str
    notes: list[str] = field(default_factory=list)


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

    def _usable(self, names: list[str], notes: list[str], label: str, inp: RouteInput) -> list[str]:
        known = []
        for name in names:
            if name not in self.acquirers or self.acquirers[name].test_mode is inp.live:
                continue
            if name in inp.ineligible:
                notes.append(f"{name} left out: {inp.ineligible[name]}")
                continue
            known.append(name)
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
        pool = self._usable(rule.pool, notes, "pool", inp)
        ordered = balancer.order(pool, self.acquirers) if pool else []
        fallback = [
            n for n in self._usable(rule.fallback, notes, "fallback", inp) if n not in ordered
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
