"""Where a payment's CPU goes: the router pinned to one core under a closed
loop, sampled by py-spy, the samples folded into a table by function (self
and inclusive) and by package, so a change to the hot path is judged on the
profile it was meant to move.

    .venv/bin/python -m benchmarks.profile              # 8 s, 16 callers
    .venv/bin/python -m benchmarks.profile --seconds 20 --workers 2
    .venv/bin/python -m benchmarks.profile --redis cluster     # or replicated

Writes ``profile.txt`` (the tables) and ``profile.raw`` (folded stacks, for
flamegraph.pl or speedscope) into benchmarks/out/<stamp>/.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.loadgen import Target, closed_loop
from benchmarks.run import AUTH, HERE, _url
from benchmarks.stack import Stack, cpu_split, stack

#: a frame's top-level module, mapped to the package it is counted under
PACKAGES = {
    "multidict": "aiohttp",
    "yarl": "aiohttp",
    "redis": "redis-py",
    "pydantic_core": "pydantic",
    "prometheus_client": "prometheus-client",
}


def _package(frame: str) -> str:
    """``func (aiohttp/client.py:12)`` -> ``aiohttp``."""
    where = frame.rpartition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    top = where.split("/", 1)[0] if "/" in where else where.split(".", 1)[0]
    return PACKAGES.get(top, top)


def _short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``: one row per function."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({tail})"


def fold(raw: Path) -> str:
    """The table a human reads: the top functions by own samples and by
    inclusive samples, and the share of each package (by leaf frame)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        frames = [f for f in stack_text.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[_short(frames[-1])] += count
        packages[_package(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            inclusive[name] += count
    lines = [f"{total} samples", "", "by package (own time)"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in packages.most_common()]
    lines += ["", "top functions by own time"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in own.most_common(40)]
    lines += ["", "top functions by inclusive time"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in inclusive.most_common(60)]
    return "\n".join(lines) + "\n"


#: the Redis setups a profile can run against (as 13-redis-cost measures them)
SETUPS = ("single", "cluster", "replicated")


async def _start_store(s: Stack, setup: str) -> dict[str, Any]:
    """Start ``setup``; the store settings the router needs beyond its URL."""
    if setup == "cluster":
        s.start_cluster(3)
        return {}
    if setup == "replicated":
        await s.start_replicated_redis()
        return {"durability": {"replicas": 1}}
    s.start_redis()
    return {}


async def profile(
    s: Stack,
    seconds: float,
    concurrency: int,
    workers: int,
    out: Path,
    rate: int = 200,
    setup: str = "single",
) -> Path:
    split = cpu_split()
    store = await _start_store(s, setup)
    s.start_sandbox("sandbox-a")
    router = s.start_router(
        s.router_config(store, default=["sandbox-a"], production=True), workers=workers
    )
    if split is not None:
        s.pin_all([router], *split)
    target = Target([_url(router)], headers=AUTH)
    await closed_loop(target, concurrency, 1.5, "warmup", seed=7)
    assert router.popen is not None
    raw = out / "profile.raw"
    spy = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--format",
        "raw",
        "--rate",
        str(rate),
        "--duration",
        str(int(seconds)),
        "--subprocesses",
        "--output",
        str(raw),
        "--pid",
        str(router.popen.pid),
    ]
    sampler = await asyncio.create_subprocess_exec(
        *spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    samples = await closed_loop(target, concurrency, seconds, "profiled")
    await sampler.wait()
    ok = sum(1 for x in samples if x.status in (200, 201))
    text = f"{ok} payments in {seconds} s at concurrency {concurrency}, {setup} Redis\n" + fold(raw)
    (out / "profile.txt").write_text(text)
    return out / "profile.txt"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--redis", choices=SETUPS, default="single", help="the Redis setup")
    args = parser.parse_args()
    out = args.out / time.strftime("profile-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)

    async def go() -> Path:
        async with stack(out / "work") as s:
            return await profile(
                s, args.seconds, args.concurrency, args.workers, out, args.rate, args.redis
            )

    table = asyncio.run(go())
    shutil.rmtree(out / "work", ignore_errors=True)
    print(table.read_text()[:6000])
    print(f"profile: {table}")


if __name__ == "__main__":
    main()
