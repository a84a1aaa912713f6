"""Config errors name the file, the path and the reason; secrets come from env."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.sandbox.settings import SandboxSettings
from router.config import DEMO_CONFIG, ConfigError, load_config, parse_config
from router.known_keys import DEMO_API_KEY
from tests.helpers import sha

BASE = """
callers:
  demo: {{api_key_sha256: ["{}"]}}
acquirers:
  a:
    kind: sandbox
    base_url: http://127.0.0.1:9001
{}
routing:
  default: [a]
""".format("0" * 64, "{extra}")


def _config(extra: str = "") -> str:
    return BASE.replace("{extra}", extra)


def test_the_embedded_demo_config_is_valid() -> None:
    config = load_config(DEMO_CONFIG)
    assert config.callers["demo"].keys[0].sha256 == sha(DEMO_API_KEY)  # the README's key
    assert config.store.kind == "memory"
    assert all(a.embedded for a in config.acquirers.values())


def test_secrets_are_read_from_the_environment() -> None:
    config = parse_config(
        _config("    api_key: {env: ACQ_A_KEY}"), environ={"ACQ_A_KEY": "s3cr3t-sandbox-key"}
    )
    assert config.acquirers["a"].api_key is not None
    assert config.acquirers["a"].api_key.get() == "s3cr3t-sandbox-key"
    assert "s3cr3t" not in repr(config)


def test_a_secret_written_in_the_file_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config("    api_key: s3cr3t"), "x.yaml", environ={})
    assert "x.yaml: acquirers.a.api_key: secrets are never written in the file" in str(caught.value)


def test_a_missing_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config("    api_key: {env: NOPE}"), "x.yaml", environ={})
    assert "acquirers.a.api_key: environment variable NOPE is not set" in str(caught.value)


def test_unknown_fields_and_bad_references_are_reported_with_their_path() -> None:
    text = _config("    colour: blue").replace("default: [a]", "default: [a, ghost]")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "x.yaml", environ={})
    report = str(caught.value)
    assert "x.yaml: acquirers.a.colour: Extra inputs are not permitted" in report


def test_routing_to_an_unknown_acquirer_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config().replace("default: [a]", "default: [a, ghost]"), environ={})
    assert "unknown acquirer 'ghost'" in str(caught.value)


def test_yaml_syntax_errors_give_a_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("callers: [\n  oops: {")
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert str(bad) in str(caught.value)
    assert "line" in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "missing.yaml")


def test_embedded_sandboxes_take_fault_rules_from_config() -> None:
    text = _config().replace(
        "    base_url: http://127.0.0.1:9001\n",
        "    embedded: true\n    faults: [{mode: unavailable, rate: 0.5}]\n",
    )
    config = parse_config(text, environ={})
    settings = config.acquirers["a"]
    assert isinstance(settings, SandboxSettings)
    assert settings.faults[0].rate == 0.5


def test_fault_rules_on_a_remote_acquirer_are_refused() -> None:
    with pytest.raises(ConfigError, match="faults apply only to embedded sandbox"):
        parse_config(_config("    faults: [{mode: unavailable}]"), environ={})


# ------------------------------------------------ secrets and keys (issue 12)

LIVE_ACQUIRER = """
  live:
    kind: stripe
    base_url: https://api.stripe.invalid
    test_mode: false
    api_key: {env: STRIPE_KEY}
"""


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "is empty"), ("short", "shorter than 16 characters")],
)
def test_an_empty_or_short_webhook_secret_is_a_config_error_naming_the_field(
    value: str, reason: str
) -> None:
    text = _config("    webhook_secret: {env: WHSEC}")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "x.yaml", environ={"WHSEC": value})
    assert "x.yaml: acquirers.a.webhook_secret" in str(caught.value)
    assert reason in str(caught.value)


def test_an_empty_api_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"acquirers\.a\.api_key: .*ACQ_KEY is empty"):
        parse_config(_config("    api_key: {env: ACQ_KEY}"), "x.yaml", environ={"ACQ_KEY": ""})


def _live(callers: str, extra: str = "") -> str:
    return f"""
server:
  metrics: {{port: 9100}}
callers:
{callers}
acquirers:
{LIVE_ACQUIRER}
routing:
  default: [live]
{extra}
"""


@pytest.mark.parametrize(
    ("callers", "extra", "path"),
    [
        (f'  c: {{api_key_sha256: ["{sha("sk_test_demo")}"]}}', "", "callers.c.keys[0].sha256"),
        (f'  c: {{api_key_sha256: ["{sha("foo")}"]}}', "", "callers.c.keys[0].sha256"),
        (
            f'  c: {{api_key_sha256: ["{sha("a-long-random-caller-key")}"]}}',
            f'admin: {{api_key_sha256: ["{sha("bar")}"]}}',
            "admin.api_key_sha256[0]",
        ),
    ],
    ids=["demo-key", "foo", "admin-bar"],
)
def test_a_live_config_refuses_known_keys_naming_the_field(
    callers: str, extra: str, path: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_live(callers, extra), "x.yaml", environ={"STRIPE_KEY": "sk_live_0123456789"})
    assert path in str(caught.value)
    assert "known key" in str(caught.value)


def test_a_test_only_config_may_use_the_demo_key() -> None:
    config = parse_config(_config(), "x.yaml", environ={})
    assert not config.live


def test_a_live_config_may_not_serve_metrics_beside_the_api() -> None:
    text = _live(f'  c: {{api_key_sha256: ["{sha("a-long-random-caller-key")}"]}}')
    text = text.replace("  metrics: {port: 9100}", "  port: 8080")
    with pytest.raises(ConfigError, match=r"server\.metrics"):
        parse_config(text, "x.yaml", environ={"STRIPE_KEY": "sk_live_0123456789"})


def test_key_hashes_may_come_from_the_environment() -> None:
    text = _config().replace(f'["{"0" * 64}"]', "[{env: CALLER_KEY_SHA256}]")
    config = parse_config(text, "x.yaml", environ={"CALLER_KEY_SHA256": sha("k")})
    assert config.callers["demo"].keys[0].sha256 == sha("k")
    with pytest.raises(ConfigError, match=r"callers\.demo"):
        parse_config(text, "x.yaml", environ={"CALLER_KEY_SHA256": "not-a-hash"})
