"""The benchmark's own arithmetic and plots: percentiles, the double-charge check, charts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.checks import double_charges
from benchmarks.report import added_latency_chart, percentile, ratio_interval
from benchmarks.run import redis_cost_chart
from benchmarks.wrk import Counted, counted_from


def test_percentiles_use_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert math.isnan(percentile([], 50))


def test_a_payment_charged_at_two_acquirers_is_a_double_charge() -> None:
    a = {
        "events": [{"kind": "sale", "reference": "pay_1"}, {"kind": "refund", "reference": "pay_1"}]
    }
    b = {
        "events": [
            {"kind": "authorization", "reference": "pay_1"},
            {"kind": "sale", "reference": "pay_2"},
        ]
    }
    assert double_charges([a, b]) == {"pay_1": 2}
    assert double_charges([a]) == {}


def test_every_benchmark_scenario_names_a_kind_the_runner_has() -> None:
    from pathlib import Path

    import yaml

    from benchmarks.run import KINDS

    found = sorted((Path(__file__).parents[2] / "benchmarks" / "scenarios").glob("*.yaml"))
    kinds = {path.name: yaml.safe_load(path.read_text())["kind"] for path in found}
    assert len(kinds) >= 13
    assert {name: kind for name, kind in kinds.items() if kind not in KINDS} == {}


def test_the_interval_of_a_ratio_is_a_t_interval_on_the_logarithms_of_its_rounds() -> None:
    # by hand: the logs' mean 0.0431, sd 0.1238, t(3) = 3.182, half-width 0.1970
    assert ratio_interval([0.9, 1.1, 1.0, 1.2]) == (0.857, 1.271)


def test_rounds_that_agree_give_an_interval_of_one_point_and_one_round_none() -> None:
    assert ratio_interval([1.25, 1.25, 1.25]) == (1.25, 1.25)
    with pytest.raises(ValueError, match="at least two rounds"):
        ratio_interval([1.1])


def test_an_a_a_run_of_this_machine_shows_no_difference() -> None:
    # the rounds of benchmarks.ab HEAD against itself on 2026-12-07
    low, high = ratio_interval([0.98, 0.99, 1.0, 0.9, 0.99, 1.02, 1.04, 0.72, 1.28, 1.0])
    assert low < 1.0 < high


def test_the_added_latency_chart_is_drawn_from_a_per_core_result(tmp_path: Path) -> None:
    side = {"added_p50_ms": 1.5, "added_p99_ms": 3.9}
    per_core = {
        "baseline_added_p50_ms": 2.2,
        "baseline_added_p99_ms": 7.4,
        "added_p50_ms": 3.9,
        "added_p99_ms": 9.9,
        "without_disk_wait": {"baseline": side, "router": side},
        "targets": {"added_p50_ms": 0.6, "added_p99_ms": 2.0},
        "latency_rate_per_s": 200,
    }
    out = added_latency_chart(per_core, tmp_path / "latency.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    per_core["closed_loop_latency"] = {
        "connections": 2,
        "direct": {},
        "baseline": side,
        "router": side,
    }
    out = added_latency_chart(per_core, tmp_path / "latency-closed.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wrks_summary_line_gives_the_paid_answers_and_its_percentiles_in_ms() -> None:
    printed = (
        "Running 4s test @ http://127.0.0.1:1/v1/payments\n"
        "WRK paid=995 answered=1000 p50=1978 p99=4211\n"
    )
    assert counted_from(printed) == Counted(paid=995, answered=1000, p50_ms=1.978, p99_ms=4.211)
    assert counted_from("unable to connect to 127.0.0.1:1 Connection refused") is None


def test_the_redis_cost_chart_is_drawn_from_a_redis_cost_result(tmp_path: Path) -> None:
    side = {"router_cpu_us_per_payment": 658, "redis_cpu_us_per_payment": 167}
    result = {"single": side, "tls": side, "replicated": side, "cluster": side}
    out = redis_cost_chart(result, 3, tmp_path / "redis-cost.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
