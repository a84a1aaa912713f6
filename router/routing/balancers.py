"""Balancers order a pool of routable acquirers: the first is tried first,
the rest are the failover order.  Each returns a full ordering, never a subset.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Protocol

from router.routing.acquirers import RoutingState


class Balancer(Protocol):
    def order(self, names: list[str], acquirers: Mapping[str, RoutingState]) -> list[str]: ...


class PriorityBalancer:
    """Lowest ``priority`` first; ties keep the pool's written order."""

    def order(self, names: list[str], acquirers: Mapping[str, RoutingState]) -> list[str]:
        return sorted(names, key=lambda n: acquirers[n].priority)


class SmoothWeightedBalancer:
    """nginx's smooth weighted round robin: weights 5,1,1 give a a b a c a a,
    never a burst of the heavy one.  Failover order after the pick: by weight."""

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def order(self, names: list[str], acquirers: Mapping[str, RoutingState]) -> list[str]:
        weighted = [n for n in names if acquirers[n].weight > 0]
        if not weighted:
            return list(names)
        total = 0
        for name in weighted:
            weight = acquirers[name].weight
            self._current[name] = self._current.get(name, 0) + weight
            total += weight
        best = max(weighted, key=lambda n: self._current[n])
        self._current[best] -= total
        rest = sorted((n for n in names if n != best), key=lambda n: -acquirers[n].weight)
        return [best, *rest]


def _latency(acquirer: RoutingState) -> float:
    # an acquirer never measured (or long unmeasured) is assumed fast, so it gets measured
    return acquirer.health.latency_ms() or 0.0


class LeastLatencyBalancer:
    """Power of two choices over the latency EWMA: cheap, and it does not send
    the whole herd to the single fastest acquirer."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def order(self, names: list[str], acquirers: Mapping[str, RoutingState]) -> list[str]:
        if len(names) < 2:
            return list(names)
        one, two = self._rng.sample(names, 2)
        first = one if _latency(acquirers[one]) <= _latency(acquirers[two]) else two
        rest = sorted((n for n in names if n != first), key=lambda n: _latency(acquirers[n]))
        return [first, *rest]


class SuccessRateBalancer:
    """Highest success rate first, except for an ``exploration`` share of
    requests that go to a random acquirer so a recovered one is noticed."""

    def __init__(self, rng: random.Random, exploration: float) -> None:
        self._rng = rng
        self._exploration = exploration

    def order(self, names: list[str], acquirers: Mapping[str, RoutingState]) -> list[str]:
        ranked = sorted(names, key=lambda n: -acquirers[n].health.success_rate)
        if len(ranked) > 1 and self._rng.random() < self._exploration:
            pick = self._rng.choice(ranked)
            ranked.remove(pick)
            ranked.insert(0, pick)
        return ranked


def make_balancer(kind: str, rng: random.Random, exploration: float) -> Balancer:
    if kind == "weighted":
        return SmoothWeightedBalancer()
    if kind == "least_latency":
        return LeastLatencyBalancer(rng)
    if kind == "success_rate":
        return SuccessRateBalancer(rng, exploration)
    return PriorityBalancer()
