"""The Prometheus alert rules in deploy/prometheus: valid, unit-tested with
promtool against series shaped like payrouter's, and about metrics payrouter
really exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
import yaml

from router.telemetry.metrics import Metrics
from tests.helpers import ROOT

RULES = ROOT / "deploy" / "prometheus"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # make test installs it (Debian: prometheus) when it can
        pytest.skip("promtool is not installed and could not be (apt-get install prometheus)")
    return found


@pytest.mark.parametrize(
    "command", [["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]]
)
def test_promtool_accepts_the_rules_and_their_unit_tests_pass(command: list[str]) -> None:
    done = subprocess.run(
        [_promtool(), *command], cwd=RULES, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((RULES / "alerts.test.yml").read_text())
    tested = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"]}
    # the slow burn shares the fast burn's recording rules and shape
    assert alerts - tested == {"PayrouterLatencySLOSlowBurn"}


def test_the_rules_query_metrics_payrouter_exposes() -> None:
    metrics = Metrics()
    metrics.watch(lambda: SimpleNamespace(acquirers={}, version="x"))  # type: ignore[arg-type,return-value]
    exposed = set(re.findall(r"^# TYPE (\S+) ", metrics.exposition().decode(), re.M))
    text = (RULES / "alerts.yml").read_text()
    queried = set(re.findall(r"\b(payrouter_[a-z_]+)", text))
    suffixes = ("_total", "_bucket", "_count", "_sum")
    for name in queried:
        base = next((name[: -len(s)] for s in suffixes if name.endswith(s)), name)
        assert name in exposed or base in exposed, name
