"""Config errors name the file, the path and the reason; secrets come from env."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import DEMO_CONFIG, ConfigError, load_config, parse_config

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
    assert config.store.kind == "memory"
    assert all(a.embedded for a in config.acquirers.values())


def test_secrets_are_read_from_the_environment() -> None:
    config = parse_config(_config("    api_key: {env: ACQ_A_KEY}"), environ={"ACQ_A_KEY": "s3cr3t"})
    assert config.acquirers["a"].api_key is not None
    assert config.acquirers["a"].api_key.get() == "s3cr3t"
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
    assert config.acquirers["a"].faults[0].rate == 0.5


def test_fault_rules_on_a_remote_acquirer_are_refused() -> None:
    with pytest.raises(ConfigError, match="faults apply only to embedded sandbox"):
        parse_config(_config("    faults: [{mode: unavailable}]"), environ={})
