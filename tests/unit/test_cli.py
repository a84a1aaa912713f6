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
