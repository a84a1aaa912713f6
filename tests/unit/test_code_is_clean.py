"""The code is held to what the style promises, on every commit: ruff (its
complexity checks included), ruff's formatting and mypy --strict run as part
of the suite, so CI (``make test``) refuses what ``make lint typecheck``
would, and the guarantees that rest on the type checker (frozen values,
exhaustive matches on control facts) are checked where they are relied on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

SOURCES = ("router", "adapters", "tests", "benchmarks")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", *SOURCES),
        ("ruff", "format", "--check", *SOURCES),
        ("mypy",),  # strict, on the files pyproject.toml names
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_the_code_passes(command: tuple[str, ...]) -> None:
    done = _run(*command)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
