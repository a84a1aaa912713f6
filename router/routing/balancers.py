"""Balancers order a pool of routable acquirers: the first is tried first,
the rest are the failover order.  Each returns a full ordering, never a subset.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
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


def _latency(acquirer: RoutingState, now: float) -> float:
    # an acquirer never measured (or long unmeasured) is assumed fast, so it gets measured
    return acquirer.health.latency_ms(now) or 0.0


#: latencies this close count as the same (so equals share the traffic, and
#: measurement noise does not hand it all to whichever looked faster last)
ALIKE_MS = 1.0
ALIKE_RATIO = 0.2


def _faster_or_alike(one: RoutingState, two: RoutingState, now: float) -> bool:
    """``one`` is faster, or as fast within noise (the sample's order is random)."""
    first, second = _latency(one, now), _latency(two, now)
    return first <= second + max(ALIKE_MS, ALIKE_RATIO * min(first, second))


class LeastLatencyBalancer:
    """Power of two choices over the latency EWMA: cheap, and it does not send
    the whole herd to the single fastest acquirer.

    A slow acquirer loses its traffic, and with it the measurements that
    would show it healed.  So it is measured anew anyway: one request goes
    to an acquirer whose latest measurement is older than its health
    policy's ``latency_recheck_s`` (the oldest first, one request per
    recheck; that measurement replaces the stale average), and an
    ``exploration`` share of requests goes to a random one.  A healed
    acquirer wins its traffic back within about ``latency_recheck_s``,
    whatever the request rate.
    """

    def __init__(
        self,
        rng: random.Random,
        exploration: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rng = rng
        self._exploration = exploration
        self._clock = clock
        self._rechecked: dict[str, float] = {}

    def _due_for_recheck(
        self, names: list[str], acquirers: Mapping[str, RoutingState], now: float
    ) -> str | None:
        def last(name: str) -> float:
            health = acquirers[name].health
            return max(health.latency_seen_at, self._rechecked.get(name, 0.0))

        stale = [
            n
            for n in names
            if acquirers[n].health.latency_ewma_ms is not None
            and now - last(n) >= acquirers[n].health.policy.latency_recheck_s
        ]
        if not stale:
            return None
        pick = min(stale, key=last)
        self._rechecked[pick] = now  # one request per recheck, not every request until it lands
        return pick

    def order(self, names: list[str], acquirers: Mapping[str, RoutingState]) -> list[str]:
        if len(names) < 2:
            return list(names)
        now = self._clock()
        first = self._due_for_recheck(names, acquirers, now)
        if first is None and self._rng.random() < self._exploration:
            first = self._rng.choice(names)
        if first is None:
            one, two = self._rng.sample(names, 2)
            first = one if _faster_or_alike(acquirers[one], acquirers[two], now) else two
        rest = sorted((n for n in names if n != first), key=lambda n: _latency(acquirers[n], now))
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
        return LeastLatencyBalancer(rng, exploration)
    if kind == "success_rate":
        return SuccessRateBalancer(rng, exploration)
    return PriorityBalancer()
