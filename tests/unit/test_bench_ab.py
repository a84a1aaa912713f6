"""The A/B benchmark runs another version of the code from a worktree of its
own, and leaves no worktree behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks.ab import checkout, forget
from benchmarks.stack import ROOT


def _worktrees() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], check=True, capture_output=True, text=True
    ).stdout


def test_a_ref_is_checked_out_beside_this_tree_and_forgotten_after(tmp_path: Path) -> None:
    tree = checkout("HEAD", tmp_path)
    try:
        assert (tree / "router" / "cli.py").is_file()
        assert str(tree) in _worktrees()
    finally:
        forget(tree)
    assert not tree.exists()
    assert str(tree) not in _worktrees()


def test_a_ref_that_names_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        checkout("no-such-ref-anywhere", tmp_path)
    assert not (tmp_path / "base").exists()
