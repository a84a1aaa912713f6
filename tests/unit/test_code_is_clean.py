"""The code is held to what the style promises, on every commit: ruff (its
complexity checks included), ruff's formatting and mypy --strict run as part
of the suite, so CI (``make test``) refuses what ``make lint typecheck``
would, and the guarantees that rest on the type checker (frozen values,
exhaustive matches on control facts) are checked where they are relied on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


FROZEN_ASSIGNED = """
from adapters.values import frozen

@frozen
class Money:
    amount: int

Money(1).amount = 2
"""


def test_the_type_checker_refuses_an_assignment_to_a_frozen_value(tmp_path: Path) -> None:
    snippet = tmp_path / "assigned.py"
    snippet.write_text(FROZEN_ASSIGNED)
    done = _run("mypy", "--strict", str(snippet))
    assert done.returncode == 1
    assert 'Property "amount" defined in "Money" is read-only' in done.stdout


def test_a_frozen_value_is_slotted_and_hashed_by_its_fields_at_run_time() -> None:
    from adapters.values import frozen

    @frozen
    class Money:
        amount: int
        currency: str

    assert Money(1, "EUR") == Money(1, "EUR")
    assert hash(Money(1, "EUR")) == hash(Money(1, "EUR"))
    assert len({Money(1, "EUR"), Money(1, "EUR"), Money(2, "EUR")}) == 2
    assert not hasattr(Money(1, "EUR"), "__dict__")
