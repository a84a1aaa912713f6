"""Rules pick the pool, balancers order it, health and drains filter it."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from adapters.settings import HealthSettings
from router.routing.acquirers import RoutingState
from router.routing.balancers import (
    LeastLatencyBalancer,
    PriorityBalancer,
    SmoothWeightedBalancer,
    SuccessRateBalancer,
)
from router.routing.breakers import AcquirerBreaker
from router.routing.health import AcquirerHealth
from router.routing.rules import RouteInput, RoutingConfig
from router.routing.table import RoutingTable


def _states(**weights: int) -> dict[str, RoutingState]:
    return {
        name: RoutingState(
            name, "sandbox", AcquirerBreaker(name), AcquirerHealth(), weight=w, priority=i
        )
        for i, (name, w) in enumerate(weights.items())
    }


PAY = RouteInput(amount=1000, currency="EUR", caller="shop", payment_methods=("tok_visa",))


def test_smooth_weighted_round_robin_interleaves_instead_of_bursting() -> None:
    states = _states(a=5, b=1, c=1)
    balancer = SmoothWeightedBalancer()
    picks = "".join(balancer.order(["a", "b", "c"], states)[0] for _ in range(7))
    assert picks == "aabacaa"


def test_weighted_failover_order_follows_the_weights() -> None:
    states = _states(a=1, b=5, c=3)
    assert SmoothWeightedBalancer().order(["a", "b", "c"], states) == ["b", "c", "a"]


def test_zero_weight_is_never_picked_first_but_stays_as_failover() -> None:
    states = _states(a=0, b=1)
    balancer = SmoothWeightedBalancer()
    assert all(balancer.order(["a", "b"], states) == ["b", "a"] for _ in range(5))


def test_priority_orders_by_priority() -> None:
    states = _states(a=1, b=1, c=1)
    states["c"].priority = -1
    assert PriorityBalancer().order(["a", "b", "c"], states) == ["c", "a", "b"]


def test_least_latency_prefers_the_faster_of_two_random_choices() -> None:
    states = _states(fast=1, slow=1)
    states["fast"].health.observe(0.010, failed=False)
    states["slow"].health.observe(0.300, failed=False)
    balancer = LeastLatencyBalancer(random.Random(1))
    assert all(balancer.order(["slow", "fast"], states)[0] == "fast" for _ in range(20))


def _after_a_brownout(
    balancer_of: Any, seconds: float = 20.0, recheck_s: float = 5.0
) -> list[tuple[float, str]]:
    """sandbox a answered in 150 ms until t=0 and 4 ms after, b 5 ms all along;
    20 requests a second, each measured.  The picks, with their times."""
    clock = [0.0]
    states = _states(a=1, b=1)
    for state in states.values():
        state.health.policy = HealthSettings(latency_recheck_s=recheck_s)
    for t in (-4.0, -3.0, -2.0, -1.0, 0.0):
        states["a"].health.observe(0.150, failed=False, now=t)
        states["b"].health.observe(0.005, failed=False, now=t)
    balancer = balancer_of(lambda: clock[0])
    picks = []
    while clock[0] < seconds:
        first = balancer.order(["a", "b"], states)[0]
        latency = 0.004 if first == "a" else 0.005
        states[first].health.observe(latency, failed=False, now=clock[0])
        picks.append((clock[0], first))
        clock[0] += 0.05
    return picks


def test_a_healed_acquirer_wins_least_latency_traffic_back_within_the_recheck_time() -> None:
    picks = _after_a_brownout(
        lambda clock: LeastLatencyBalancer(random.Random(3), 0.0, clock=clock)
    )
    first_back = next(t for t, name in picks if name == "a")
    assert first_back == pytest.approx(5.0, abs=0.06)
    later = [name for t, name in picks if t >= 7.0]
    assert later.count("a") / len(later) > 0.4  # measured fast again: it competes


def test_without_rechecks_the_decaying_average_alone_keeps_it_out_for_long() -> None:
    """Why the recheck exists: the half-life alone takes most of a minute."""
    picks = _after_a_brownout(
        lambda clock: LeastLatencyBalancer(random.Random(3), 0.0, clock=clock), recheck_s=600.0
    )
    assert [name for _, name in picks].count("a") == 0


def test_least_latency_explores_a_share_of_requests() -> None:
    picks = _after_a_brownout(
        lambda clock: LeastLatencyBalancer(random.Random(3), 0.1, clock=clock),
        seconds=2.0,
        recheck_s=600.0,
    )
    assert [name for _, name in picks].count("a") > 0


def test_success_rate_explores_a_little_and_otherwise_picks_the_best() -> None:
    states = _states(good=1, bad=1)
    for _ in range(10):
        states["bad"].health.observe(0.01, failed=True)
    balancer = SuccessRateBalancer(random.Random(3), exploration=0.1)
    firsts = Counter(balancer.order(["bad", "good"], states)[0] for _ in range(2000))
    assert firsts["good"] > 1800
    assert 30 < firsts["bad"] < 170  # about half of the 10% exploration


def _table(states: dict[str, RoutingState], **routing: Any) -> RoutingTable:
    config = RoutingConfig.model_validate({"default": list(states), **routing})
    return RoutingTable(config, states, random.Random(0))


RULES = [
    {
        "name": "big-eur",
        "match": {"currency": ["EUR"], "amount": {"min": 10000}},
        "pool": ["b"],
        "fallback": ["c"],
    },
    {"name": "visa-bins", "match": {"bin": [{"from": "400000", "to": "499999"}]}, "pool": ["c"]},
    {"name": "de", "match": {"country": ["DE"], "card_brand": ["mastercard"]}, "pool": ["b"]},
    {"name": "vip", "match": {"caller": ["vip"]}, "pool": ["c", "b"]},
    {"name": "wallets", "match": {"payment_method": ["tok_wallet_*"]}, "pool": ["a"]},
]


@pytest.mark.parametrize(
    ("change", "rule", "candidates"),
    [
        ({}, "(default)", ["a", "b", "c"]),
        ({"amount": 20000}, "big-eur", ["b", "c"]),
        ({"amount": 20000, "currency": "USD"}, "(default)", ["a", "b", "c"]),
        ({"bin": "45717360"}, "visa-bins", ["c"]),
        ({"bin": "51000000"}, "(default)", ["a", "b", "c"]),
        ({"country": "DE", "card_brand": "mastercard"}, "de", ["b"]),
        ({"country": "DE", "card_brand": "visa"}, "(default)", ["a", "b", "c"]),
        ({"caller": "vip"}, "vip", ["b", "c"]),  # priority balancer: b (1) before c (2)
        ({"payment_methods": ("tok_wallet_apple",)}, "wallets", ["a"]),
    ],
)
def test_the_first_matching_rule_chooses_the_pool(
    change: dict[str, Any], rule: str, candidates: list[str]
) -> None:
    table = _table(_states(a=1, b=1, c=1), rules=RULES)
    plan = table.plan(RouteInput(**{**PAY.__dict__, **change}))
    assert (plan.rule, plan.candidates) == (rule, candidates)


def test_drained_and_unhealthy_acquirers_leave_the_pool() -> None:
    states = _states(a=1, b=1, c=1)
    states["a"].drained = True
    states["b"].health.healthy = False
    plan = _table(states, panic_threshold=0.3).plan(PAY)
    assert plan.candidates == ["c"]
    assert any("a left out: drained" in n for n in plan.notes)


def test_below_the_panic_threshold_health_is_ignored_but_drains_are_not() -> None:
    states = _states(a=1, b=1, c=1)
    states["a"].drained = True
    states["b"].health.healthy = False
    states["c"].health.healthy = False
    plan = _table(states, panic_threshold=0.5).plan(PAY)
    assert plan.candidates == ["b", "c"]
    assert any("panic mode" in n for n in plan.notes)


def test_an_open_breaker_takes_an_acquirer_out_of_rotation() -> None:
    states = _states(a=1, b=1)
    states["a"].breaker._breaker.open()
    assert _table(states, panic_threshold=0.0).plan(PAY).candidates == ["b"]


def test_a_routing_hint_moves_a_usable_acquirer_first() -> None:
    table = _table(_states(a=1, b=1, c=1))
    assert table.plan(RouteInput(**{**PAY.__dict__, "preferred": "c"})).candidates[0] == "c"
    plan = table.plan(RouteInput(**{**PAY.__dict__, "preferred": "ghost"}))
    assert plan.candidates == ["a", "b", "c"]
    assert any("ignored" in n for n in plan.notes)
