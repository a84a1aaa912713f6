"""The payrouter command line: config validation exits cleanly with reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.cli import main
from router.config import DEMO_CONFIG


def test_config_validate_accepts_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", str(DEMO_CONFIG)]) == 0
    assert "OK (2 acquirers" in capsys.readouterr().out


def test_config_validate_reports_path_and_reason_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("callers: {}\nacquirers: {}\nrouting: {default: []}\n")
    assert main(["config", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: callers:" in err
    assert "Traceback" not in err


def test_config_explain_prints_the_rule_and_the_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "PAYROUTER_REDIS_PASSWORD",
        "PAYROUTER_ID_SECRET",
        "SANDBOX_EU_KEY",
        "SANDBOX_US_KEY",
        "CHECKOUT_KEY_SHA256",
        "SUBSCRIPTIONS_KEY_SHA256",
        "ADMIN_KEY_SHA256",
        "PAYROUTER_DB_PASSWORD",
    ):
        monkeypatch.setenv(name, "ab" * 32)
    payment = tmp_path / "p.json"
    payment.write_text('{"amount": 250000, "currency": "EUR", "payment_method": "tok_visa"}')
    config = DEMO_CONFIG.parent / "production.example.yaml"
    assert main(["config", "explain", str(config), str(payment)]) == 0
    out = capsys.readouterr().out
    assert "rule:    eur-high-value" in out
    assert out.index("1. sandbox-eu") < out.index("2. sandbox-backup")
    assert main(["config", "explain", str(config), str(payment), "--json"]) == 0
    assert '"candidates":["sandbox-eu","sandbox-backup"]' in capsys.readouterr().out


def test_config_explain_refuses_an_invalid_payment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payment = tmp_path / "p.json"
    payment.write_text('{"amount": "ten", "currency": "EUR", "payment_method": "tok_visa"}')
    assert main(["config", "explain", str(DEMO_CONFIG), str(payment)]) == 2
    assert "payment: amount" in capsys.readouterr().err
