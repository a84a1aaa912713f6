"""Is this code cheaper than that code?  The router of this checkout (with
its uncommitted changes) against
the router of a git ref, each in turn alone on one pinned core under the same
closed loop, in alternating rounds (the per-core method: the ratio of each
round, their geometric mean).

    .venv/bin/python -m benchmarks.ab HEAD~3               # 30 rounds of 2 s
    .venv/bin/python -m benchmarks.ab main --rounds 60

Many short rounds resolve more than a few long ones (the machine drifts
over minutes, and a round's ratio only sees the drift within its own pair):
one A/A run each on 2026-12-07, the same code on both sides, gave a 95%
interval of 0.89-1.09 from 10 rounds of 4 s and 0.90-1.01 from 30 rounds
of 2 s, in 1.5 times the measuring time.

This machine's speed drifts within minutes and from day to day, and the
router's ratio to the bare proxy drifts with it (benchmarks/README.md), so a
change of the code is judged by this, never by comparing two published
runs.  The ref is checked out as a git worktree in a temporary folder and
run with this checkout's virtualenv (so a ref whose dependencies differ is
not comparable here).  Writes ``benchmarks/out/ab-<stamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.loadgen import Target
from benchmarks.report import ratio_interval
from benchmarks.run import AUTH, HERE, _alternating_rounds, _geometric_mean, _medians, _url
from benchmarks.stack import ROOT, cpu_split, stack


def checkout(ref: str, where: Path) -> Path:
    """``ref`` as a detached worktree under ``where`` (refused if it names nothing)."""
    tree = where / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
        check=True,
        capture_output=True,
    )
    return tree


def forget(tree: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
        check=False,
        capture_output=True,
    )


async def compare(ref: str, base: Path, rounds: int, seconds: float, work: Path) -> dict[str, Any]:
    async with stack(work) as s:
        s.start_redis()
        s.start_sandbox("sandbox-a")
        config = s.router_config(default=["sandbox-a"], production=True)
        old = s.start_router(config, tree=base)
        new = s.start_router(config)
        spec = {"concurrency": 16, "duration_s": seconds, "rounds": rounds}
        sides = {
            "base": (old, Target([_url(old)], headers=AUTH)),
            "this": (new, Target([_url(new)], headers=AUTH)),
        }
        figures, ratios = await _alternating_rounds(s, sides, spec)
    return {
        "base": ref,
        "rounds": len(ratios),
        "seconds_per_round": seconds,
        "base_router": _medians(figures["base"]),
        "this_router": _medians(figures["this"]),
        "cpu_ratio_this_to_base": round(_geometric_mean(ratios), 3),
        "cpu_ratio_95ci": ratio_interval(ratios),
        "cpu_ratio_each_round": [round(x, 2) for x in ratios],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ref", help="the code to compare with: a commit, branch or tag")
    parser.add_argument("--rounds", type=int, default=30, help="rounded up to an even number")
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="of each side in each round (wrk: whole seconds)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    if cpu_split() is None:
        parser.error("needs 2 CPUs: one for the router under measurement, one for the rest")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="payrouter-ab-") as temp:
        try:
            base = checkout(args.ref, Path(temp))
        except subprocess.CalledProcessError as exc:
            parser.error(f"cannot check out {args.ref!r}: {exc.stderr.decode().strip()}")
        try:
            result = asyncio.run(
                compare(args.ref, base, args.rounds, args.seconds, Path(temp) / "work")
            )
        finally:
            forget(base)
    path = args.out / time.strftime("ab-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(result, indent=2))
    this, old = result["this_router"], result["base_router"]
    low, high = result["cpu_ratio_95ci"]
    each = result["cpu_ratio_each_round"]
    print(
        f"this checkout: {this['cpu_us_per_payment']} us per payment, {args.ref}: "
        f"{old['cpu_us_per_payment']} us; ratio {result['cpu_ratio_this_to_base']} "
        f"(95% interval {low}-{high}; rounds {min(each)}-{max(each)})"
    )
    if low <= 1.0 <= high:
        print("no difference shown: the interval holds 1.0 (run more rounds, or again)")
    print(f"report: {path}")


if __name__ == "__main__":
    main()
