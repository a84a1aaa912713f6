"""The benchmark's own arithmetic: percentiles and the double-charge check."""

from __future__ import annotations

import math

from benchmarks.checks import double_charges
from benchmarks.report import percentile


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
