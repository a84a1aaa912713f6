"""The payrouter command line: config validation exits cleanly with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.cli import main
from router.config import DEMO_CONFIG
from tests.helpers import ROOT


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
    config = ROOT / "config" / "production.example.yaml"
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


MIXED = """
callers:
  demo: {api_key_sha256: ["%s"]}
acquirers:
  stripe-eu: {kind: stripe, base_url: "https://api.stripe.com", api_key: {env: SK}}
  adyen-eu:
    kind: adyen
    base_url: "https://checkout-test.adyen.com/v71"
    api_key: {env: SK}
    merchant_account: Shop
    return_url: "https://shop.example/r"
  cko: {kind: checkout, base_url: "https://api.sandbox.checkout.com", api_key: {env: SK}}
  sandbox-a: {kind: sandbox, embedded: true}
vaults:
  cards: {kind: stripe_forwarding, embedded: true, acquirers: [adyen-eu, sandbox-a]}
routing:
  default: [stripe-eu, adyen-eu, cko, sandbox-a]
""" % ("ab" * 32)


@pytest.mark.parametrize(
    ("method", "verdicts"),
    [
        (
            {"type": "vault", "vault": "cards", "token": "tok_123456"},
            {
                "stripe-eu": "not eligible: vault cards does not forward to this acquirer",
                "adyen-eu": "eligible",
                "cko": "not eligible: vault cards does not forward to this acquirer",
                "sandbox-a": "eligible",
            },
        ),
        (
            {
                "type": "acquirer_tokens",
                "tokens": {"stripe": "pm_1", "adyen-eu": "8416038790273850"},
            },
            {
                "stripe-eu": "eligible",
                "adyen-eu": "not eligible: a stored payment method needs the shopper_reference "
                "it belongs to",
                "cko": "not eligible: no token issued by this acquirer",
                "sandbox-a": "not eligible: no token issued by this acquirer",
            },
        ),
        (
            {
                "type": "network_token",
                "number": "4895370012003478",
                "expiry_month": 12,
                "expiry_year": 2031,
                "scheme": "amex",
                "cryptogram": "AgAAAAAABk4DWZ4C28yUQAAAAAA=",
            },
            {
                "stripe-eu": "not eligible: stripe does not take network tokens",
                "adyen-eu": "eligible",
                "cko": "not eligible: checkout takes Visa and Mastercard network tokens, not amex",
                "sandbox-a": "eligible",
            },
        ),
    ],
)
def test_config_explain_shows_for_each_acquirer_whether_the_method_can_go_there(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    method: dict[str, object],
    verdicts: dict[str, str],
) -> None:
    monkeypatch.setenv("SK", "sk_test_abcdefgh1234")
    config = tmp_path / "c.yaml"
    config.write_text(MIXED)
    payment = tmp_path / "p.json"
    payment.write_text(json.dumps({"amount": 2500, "currency": "EUR", "payment_method": method}))
    assert main(["config", "explain", str(config), str(payment)]) == 0
    out = capsys.readouterr().out
    shown = {
        line.split()[0]: line.split(None, 1)[1]
        for line in out.split("per acquirer:\n")[1].split("rule:")[0].splitlines()
    }
    assert shown == verdicts
    assert "4895370012003478" not in out


@pytest.mark.parametrize(
    "command",
    [["serve"], ["sandbox"], ["config", "explain"], ["ledger", "export"], ["drain"], ["health"]],
)
def test_help_shows_defaults_in_plain_text(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text
    assert ":class:" not in text
    assert "(default: None)" not in text
    if command == ["sandbox"]:
        assert "(default: 127.0.0.1)" in text
    if command == ["serve"]:
        assert "(default: 1)" in text
        assert "default: the embedded demo" in text


def test_the_demo_config_ships_inside_the_package() -> None:
    assert DEMO_CONFIG.parent == ROOT / "router"
    assert DEMO_CONFIG.read_text() == (ROOT / "config" / "demo.yaml").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"router" = ["demo.yaml"]' in pyproject


def test_health_exits_0_only_when_the_url_answers_200(tmp_path: Path) -> None:
    import http.server
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert main(["health", "--url", f"http://127.0.0.1:{port}/healthz"]) == 0
        assert main(["health", "--url", f"http://127.0.0.1:{port}/other"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert main(["health", "--url", "http://127.0.0.1:9/healthz"]) == 1
