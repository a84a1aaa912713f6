"""Run benchmark scenarios; write a JSON report and PNG plots.

    python -m benchmarks.run                  # every scenario in benchmarks/scenarios
    python -m benchmarks.run --quick          # shorter runs (make bench)
    python -m benchmarks.run 03-acquirer-outage.yaml

Performance targets are reported as RATIOS measured in one run on this
machine (router vs the minimal baseline, 2 workers vs 1); chaos scenarios
check the sandbox ledgers: double charges must be 0, and no accepted payment
may stay unresolved after reconciliation.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks import checks, report, wrk
from benchmarks.loadgen import Sample, Target, closed_loop, open_loop
from benchmarks.stack import ADMIN, DEMO_KEY, Proc, RedisUsage, Stack, cpu_split, stack
from tests.procs.proxy import StallingProxy

HERE = Path(__file__).resolve().parent
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


def _url(proc: Proc) -> str:
    return f"http://127.0.0.1:{proc.port}"


async def _cpu_window(
    procs: list[Proc], run: Awaitable[list[Sample]]
) -> tuple[list[Sample], float]:
    before = sum(p.cpu_seconds() for p in procs)
    samples = await run
    return samples, sum(p.cpu_seconds() for p in procs) - before


async def compare(s: Stack, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """Direct-to-sandbox, baseline proxy and router at the same open-loop rates.

    No client retries here: under overload a retry storm would be measured,
    not the proxy.  Each rate gets a fresh set of processes' CPU counters."""
    sandbox = s.sandboxes["sandbox-a"]
    baseline = s.start_baseline()
    router = s.start_router(s.router_config(default=["sandbox-a"], production=True))
    assert s.redis is not None
    targets = {
        "direct": (Target([_url(sandbox)], path="/v1/charges"), [sandbox]),
        "baseline": (Target([_url(baseline)]), [baseline]),
        "router": (Target([_url(router)], headers=AUTH), [router]),
    }
    result: dict[str, Any] = {}
    for rate in spec["rates"]:
        runs: dict[str, Any] = {}
        for name, (target, procs) in targets.items():
            await open_loop(target, rate, 1.0, f"{name}-warmup", seed=rate, max_tries=1)
            redis_before = s.redis.cpu_seconds()
            samples, cpu = await _cpu_window(
                procs, open_loop(target, rate, spec["duration_s"], f"{name}@{rate}", max_tries=1)
            )
            redis_cpu = s.redis.cpu_seconds() - redis_before
            ok = [x for x in samples if x.status in (200, 201)]
            runs[name] = {
                "latency_ms": report.latency_summary(samples),
                "errors": len(samples) - len(ok),
                "cpu_ms_per_payment": round(1000 * cpu / max(1, len(ok)), 3),
                "redis_cpu_ms_per_payment": round(1000 * redis_cpu / max(1, len(ok)), 3),
            }
            report.plot(samples, f"{name} at {rate}/s", out / f"steady-{rate}-{name}.png")
        base_cpu = runs["baseline"]["cpu_ms_per_payment"]
        result[f"at_{rate}_per_s"] = {
            "runs": runs,
            "cpu_ratio_router_to_baseline": round(
                runs["router"]["cpu_ms_per_payment"] / base_cpu, 2
            )
            if base_cpu
            else None,
            "added_p50_ms": round(
                runs["router"]["latency_ms"]["p50"] - runs["direct"]["latency_ms"]["p50"], 2
            ),
            "added_p99_ms": round(
                runs["router"]["latency_ms"]["p99"] - runs["direct"]["latency_ms"]["p99"], 2
            ),
        }
        report.bar_chart(
            {k: v["cpu_ms_per_payment"] for k, v in runs.items()},
            f"CPU per payment at {rate}/s (ms)",
            "ms of CPU",
            out / f"steady-{rate}-cpu.png",
        )
    s.stop(router)
    s.stop(baseline)
    return result


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def load_generator() -> str:
    return "wrk" if wrk.available() else "python (wrk is not installed)"


async def _closed_loop_counted(
    s: Stack, target: Target, spec: dict[str, Any], label: str
) -> tuple[int, int, float]:
    """(paid, answered, seconds) of one closed loop: wrk where it is
    installed (it leaves the shared core to the sandbox and Redis), the
    Python generator otherwise."""
    if wrk.available():
        seconds = math.ceil(spec["duration_s"])
        counted = await wrk.closed_loop(target, spec["concurrency"], seconds, label, str(s.workdir))
        return counted.paid, counted.answered, seconds
    samples = await closed_loop(target, spec["concurrency"], spec["duration_s"], label)
    paid = sum(1 for x in samples if x.status in (200, 201))
    return paid, len(samples), spec["duration_s"]


async def _one_core(
    s: Stack, proc: Proc, target: Target, spec: dict[str, Any], label: str
) -> dict[str, float]:
    """``proc`` (already alone on the hot core) under a closed loop: its CPU
    and Redis's per payment, and its throughput."""
    assert s.redis is not None
    before, redis_before = proc.cpu_seconds(), s.redis.cpu_seconds()
    paid, answered, seconds = await _closed_loop_counted(s, target, spec, label)
    cpu, redis_cpu = proc.cpu_seconds() - before, s.redis.cpu_seconds() - redis_before
    return {
        "cpu_us_per_payment": round(1e6 * cpu / max(1, paid), 1),
        "redis_cpu_us_per_payment": round(1e6 * redis_cpu / max(1, paid), 1),
        "throughput_per_s": round(paid / seconds, 1),
        "core_busy": round(cpu / seconds, 2),
        "errors": answered - paid,
    }


def _medians(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """The median of each figure over the rounds, and the CPU figure's spread."""
    cpu = [r["cpu_us_per_payment"] for r in rounds]
    summary: dict[str, Any] = {k: _median([r[k] for r in rounds]) for k in rounds[0]}
    summary["cpu_us_per_payment_min_max"] = [min(cpu), max(cpu)]
    median_cpu = summary["cpu_us_per_payment"]
    summary["capacity_per_core_per_s"] = round(1e6 / median_cpu) if median_cpu else None
    return summary


def _geometric_mean(values: list[float]) -> float:
    return math.prod(values) ** (1 / len(values))


def _in_turn(sides: dict[str, Any], round_: int) -> list[str]:
    """The sides' order in a round: as given in even rounds, reversed in odd
    ones, so that each side runs first as often as the other."""
    return list(sides) if round_ % 2 == 0 else list(reversed(sides))


async def _alternating_rounds(
    s: Stack, sides: dict[str, tuple[Proc, Target]], spec: dict[str, Any]
) -> tuple[dict[str, list[dict[str, float]]], list[float]]:
    """Two sides, each in turn alone on the hot core under a closed loop
    (after a warm-up each), over an even number of rounds with the order
    swapped each round: each side's figures per round, and each round's
    ratio of the second side's CPU per payment to the first's.

    This machine's speed drifts by a quarter within minutes, and whichever
    side runs second in a round can cost up to half as much again as the
    same code run first.  A drift moves both sides of a round's ratio
    together; a position effect multiplies half the rounds' ratios and
    divides the other half, so the geometric mean of the ratios cancels it."""
    split = cpu_split()
    assert split is not None
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for name, (proc, target) in sides.items():
        s.pin_all([proc], *split)
        await _closed_loop_counted(s, target, {**spec, "duration_s": 2}, f"{name}-warmup")
    for round_ in range(2 * ((spec["rounds"] + 1) // 2)):  # even: each order as often
        for name in _in_turn(sides, round_):
            proc, target = sides[name]
            s.pin_all([proc], *split)
            rounds[name].append(await _one_core(s, proc, target, spec, f"{name}-{round_}"))
    s.pin_all([], *split)
    first, second = (rounds[name] for name in sides)
    ratios = [
        b["cpu_us_per_payment"] / a["cpu_us_per_payment"]
        for a, b in zip(first, second, strict=True)
    ]
    return rounds, ratios


async def _latency(
    s: Stack, sides: dict[str, tuple[Proc, Target]], spec: dict[str, Any], variant: str
) -> dict[str, dict[str, float]]:
    """Each side alone on the hot core under an open loop at the latency rate."""
    split = cpu_split()
    assert split is not None
    latency = {}
    for name, (proc, target) in sides.items():
        s.pin_all([proc], *split)
        gentle = await open_loop(
            target,
            spec["latency_rate"],
            spec["duration_s"],
            f"{name}{variant}@{spec['latency_rate']}/s",
            max_tries=1,
        )
        latency[name] = report.latency_summary(gentle)
    s.pin_all([], *split)
    return latency


async def _by_concurrency(
    s: Stack, sides: dict[str, tuple[Proc, Target]], spec: dict[str, Any]
) -> dict[str, Any]:
    """CPU per payment under closed loops of a few sizes (``concurrencies``),
    each side alone on the hot core, the order swapped at each size: how the
    ratio moves with load.  A busier event loop batches more (one system
    call for several answers), and the two sides do not gain alike."""
    split = cpu_split()
    assert split is not None
    found: dict[str, Any] = {}
    for index, callers in enumerate(spec["concurrencies"]):
        level: dict[str, Any] = {}
        for name in _in_turn(sides, index):
            proc, target = sides[name]
            s.pin_all([proc], *split)
            level[name] = await _one_core(
                s, proc, target, {**spec, "concurrency": callers}, f"{name}-c{callers}"
            )
        first, second = (level[name]["cpu_us_per_payment"] for name in sides)
        found[str(callers)] = {**level, "cpu_ratio": round(second / first, 2)}
    s.pin_all([], *split)
    return found


async def _latency_closed(
    s: Stack, sides: dict[str, tuple[Proc | None, Target]], spec: dict[str, Any]
) -> dict[str, Any]:
    """The issue's own measure of latency: a closed loop of a few callers
    (``latency_connections``), wrk's percentiles of every answer, each side
    alone on the hot core (the direct call has no process there), in
    ``latency_rounds`` rounds, the order swapped each round: the median of
    each percentile over the rounds.  wrk, in C, adds far less of its own
    to each answer than the Python generator sharing the other core."""
    if not wrk.available():
        return {"skipped": "wrk is not installed"}
    split = cpu_split()
    assert split is not None
    connections = spec["latency_connections"]
    seen: dict[str, list[wrk.Counted]] = {name: [] for name in sides}
    for round_ in range(spec["latency_rounds"]):
        for name in _in_turn(sides, round_):
            proc, target = sides[name]
            s.pin_all([proc] if proc is not None else [], *split)
            seen[name].append(
                await wrk.closed_loop(
                    target,
                    connections,
                    spec["duration_s"],
                    f"{name}-c{connections}-{round_}",
                    str(s.workdir),
                )
            )
    s.pin_all([], *split)
    latency = {
        name: {
            "p50": _median([c.p50_ms for c in runs]),
            "p99": _median([c.p99_ms for c in runs]),
            "throughput_per_s": round(_median([c.answered for c in runs]) / spec["duration_s"]),
            "each_round": [[c.p50_ms, c.p99_ms] for c in runs],
        }
        for name, runs in seen.items()
    }
    direct = latency.pop("direct")
    return {
        "connections": connections,
        "direct": direct,
        **{
            name: {
                **summary,
                "added_p50_ms": round(summary["p50"] - direct["p50"], 2),
                "added_p99_ms": round(summary["p99"] - direct["p99"], 2),
            }
            for name, summary in latency.items()
        },
    }


def _added(latency: dict[str, dict[str, float]], direct_ms: dict[str, float]) -> dict[str, Any]:
    """Each side's latency and what it adds over the direct call."""
    return {
        name: {
            "latency_ms": summary,
            "added_p50_ms": round(summary["p50"] - direct_ms["p50"], 2),
            "added_p99_ms": round(summary["p99"] - direct_ms["p99"], 2),
        }
        for name, summary in latency.items()
    }


async def per_core(s: Stack, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """The router on a core of its own against the bare journaled proxy
    (benchmarks/baseline.py: claim, call, store the answer) on the same core,
    and the acquirer called directly.  The ratios are the targets: CPU per
    payment at most 1.5x the baseline's, at most 0.6 ms p50 / 2 ms p99 added
    over the direct call, at least 3,000 payments/s per core.  The two are
    measured in alternating rounds (:func:`_alternating_rounds`)."""
    split = cpu_split()
    if split is None:
        return {"skipped": "needs 2 CPUs: one for the router, one for the rest"}
    sandbox = s.sandboxes["sandbox-a"]
    baseline = s.start_baseline()
    router = s.start_router(s.router_config(default=["sandbox-a"], production=True))
    sides = {
        "baseline": (baseline, Target([_url(baseline)])),
        "router": (router, Target([_url(router)], headers=AUTH)),
    }
    rounds, ratios = await _alternating_rounds(s, sides, spec)
    # the same bare proxy on the router's own pipelined Redis connection: how
    # much of the ratio is the client rather than what the router does
    multiplexed = s.start_baseline("multiplexed")
    same_client, same_client_ratios = await _alternating_rounds(
        s,
        {
            "baseline_multiplexed": (multiplexed, Target([_url(multiplexed)])),
            "router": sides["router"],
        },
        spec,
    )
    s.stop(multiplexed)
    by_concurrency = await _by_concurrency(s, sides, spec)
    latency = await _latency(s, sides, spec, "")
    # the same with the journal's writes acknowledged before they are on disk:
    # how much of the added latency is this machine's disk, not the router
    with s.redis_fsync("everysec"):
        no_disk_wait = await _latency(s, sides, spec, "-no-disk-wait")
    direct_target = Target([_url(sandbox)], path="/v1/charges")
    direct = await open_loop(
        direct_target, spec["latency_rate"], spec["duration_s"], "direct", max_tries=1
    )
    closed = await _latency_closed(s, {**sides, "direct": (None, direct_target)}, spec)
    s.stop(router)
    s.stop(baseline)
    direct_ms = report.latency_summary(direct)
    runs = {name: {**_medians(rounds[name]), "latency_ms": latency[name]} for name in sides}
    runs["baseline_multiplexed"] = _medians(same_client["baseline_multiplexed"])
    added = _added(latency, direct_ms)
    result = {
        "pinned": {"measured": sorted(split[0]), "the_rest": sorted(split[1])},
        "load_generator": load_generator(),
        "concurrency": spec["concurrency"],
        "rounds": len(ratios),
        "latency_rate_per_s": spec["latency_rate"],
        **runs,
        "direct": {"latency_ms": direct_ms},
        "cpu_ratio_router_to_baseline": round(_geometric_mean(ratios), 2),
        "cpu_ratio_each_round": [round(x, 2) for x in ratios],
        "cpu_ratio_95ci": report.ratio_interval(ratios),
        "cpu_ratio_router_to_baseline_multiplexed": round(_geometric_mean(same_client_ratios), 2),
        "cpu_ratio_router_to_baseline_multiplexed_95ci": report.ratio_interval(same_client_ratios),
        "cpu_ratio_router_to_baseline_multiplexed_each_round": [
            round(x, 2) for x in same_client_ratios
        ],
        "added_p50_ms": added["router"]["added_p50_ms"],
        "added_p99_ms": added["router"]["added_p99_ms"],
        # what the bare proxy's own hop adds: the floor under the router's figures
        "baseline_added_p50_ms": added["baseline"]["added_p50_ms"],
        "baseline_added_p99_ms": added["baseline"]["added_p99_ms"],
        "without_disk_wait": _added(no_disk_wait, direct_ms),
        "closed_loop_latency": closed,
        "by_concurrency": by_concurrency,
        "targets": {
            "cpu_ratio": 1.5,
            "added_p50_ms": 0.6,
            "added_p99_ms": 2.0,
            "capacity_per_core_per_s": 3000,
        },
    }
    report.bar_chart(
        {k: v["cpu_us_per_payment"] for k, v in runs.items()},
        "CPU per payment on one pinned core (us, median of rounds)",
        "us of CPU",
        out / "per-core-cpu.png",
    )
    report.added_latency_chart(result, out / "per-core-latency.png")
    report.grouped_bar_chart(
        {
            f"{callers} caller{'s' if callers != '1' else ''} ({level['cpu_ratio']}x)": {
                "bare journaled proxy": level["baseline"]["cpu_us_per_payment"],
                "payrouter": level["router"]["cpu_us_per_payment"],
            }
            for callers, level in by_concurrency.items()
        },
        "CPU per payment on one pinned core, by closed-loop callers",
        "us of CPU",
        out / "per-core-by-concurrency.png",
    )
    return result


async def scaling(s: Stack, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """``serve --workers N`` for N = 1, 2, all its workers pinned to one
    core (everything else on the other), under a closed loop: what a payment
    costs the router (all workers) and Redis, and so what one core carries
    with N workers on it.  Equal CPU per payment means a worker adds nothing
    per core, and N workers on N cores carry N times one core's payments:
    the basis of the sizing model in benchmarks/README.md ("Sizing a fleet").
    (A machine with 2 CPUs cannot give each worker a core of its own and still
    feed them; the unpinned mixed run is 01-steady.)  Measured in alternating
    rounds (:func:`_alternating_rounds`)."""
    assert s.redis is not None
    split = cpu_split()
    if split is None:
        return {"skipped": "needs 2 CPUs: one for the router, one for the rest"}
    result: dict[str, Any] = {
        "concurrency": spec["concurrency"],
        "load_generator": load_generator(),
        "pinned": {"router_workers": sorted(split[0]), "the_rest": sorted(split[1])},
    }
    routers = {
        f"workers_{workers}": s.start_router(
            s.router_config(default=["sandbox-a"], production=True), workers=workers
        )
        for workers in (1, 2)
    }
    sides = {
        name: (router, Target([_url(router)], headers=AUTH)) for name, router in routers.items()
    }
    rounds, ratios = await _alternating_rounds(s, sides, spec)
    for name, router in routers.items():
        result[name] = _medians(rounds[name])
        s.stop(router)
    result["rounds"] = len(ratios)
    result["cpu_per_payment_2_vs_1_each_round"] = [round(x, 2) for x in ratios]
    result["cpu_per_payment_2_vs_1"] = round(_geometric_mean(ratios), 2)
    result["cpu_per_payment_2_vs_1_95ci"] = report.ratio_interval(ratios)
    report.bar_chart(
        {
            f"{w} worker{'s' if w > 1 else ''} on 1 core": result[f"workers_{w}"][
                "capacity_per_core_per_s"
            ]
            for w in (1, 2)
        },
        "payments/s one core carries",
        "payments/s",
        out / "workers-throughput.png",
    )
    return result


async def _redis_side(
    s: Stack, spec: dict[str, Any], name: str, store: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One router on the stack's current Redis under a closed loop: the
    router's and every Redis server's CPU per payment; and, before any
    payment, what an idle router's background work (fleet polls, the
    reconciler, the outbox) costs Redis per second beyond Redis's own, for
    each number of workers in ``idle_workers`` (the fleet shares the
    reconciler's sweep, so more workers should not multiply it).  ``store``:
    settings the routers' store gets beside the URL (durability, say)."""
    idle_s = spec["idle_s"]

    def spent(before: list[RedisUsage]) -> tuple[list[float], int]:
        now = s.redis_usage()
        cpu = [n.cpu_s - b.cpu_s for n, b in zip(now, before, strict=True)]
        return cpu, sum(n.commands - b.commands for n, b in zip(now, before, strict=True))

    start = s.redis_usage()
    await asyncio.sleep(idle_s)
    quiet_cpu, quiet_commands = spent(start)
    idle: dict[str, dict[str, float]] = {}
    for workers in spec["idle_workers"]:
        router = s.start_router(
            s.router_config(store, default=["sandbox-a"], production=True), workers=workers
        )
        await asyncio.sleep(spec["idle_settle_s"])  # every worker has passed and seen the rest
        start = s.redis_usage()
        await asyncio.sleep(idle_s)
        idle_cpu, idle_commands = spent(start)
        s.stop(router)
        idle[f"workers_{workers}"] = {
            "redis_cpu_ms_per_s": round(1000 * (sum(idle_cpu) - sum(quiet_cpu)) / idle_s, 2),
            "redis_commands_per_s": round((idle_commands - quiet_commands) / idle_s, 1),
        }
    router = s.start_router(s.router_config(store, default=["sandbox-a"], production=True))
    target = Target([_url(router)], headers=AUTH)
    await closed_loop(target, spec["concurrency"], 1.5, f"{name}-warmup", seed=11)
    start = s.redis_usage()
    samples, cpu = await _cpu_window(
        [router], closed_loop(target, spec["concurrency"], spec["duration_s"], name)
    )
    busy, commands = spent(start)
    s.stop(router)
    paid = max(1, sum(1 for x in samples if x.status == 201))
    total = sum(busy)
    return {
        "payments": paid,
        "router_cpu_us_per_payment": round(1e6 * cpu / paid),
        "redis_cpu_us_per_payment": round(1e6 * total / paid),
        "redis_commands_per_payment": round(commands / paid, 2),
        "redis_servers": len(busy),
        "busiest_server_share": round(max(busy) / total, 2) if total else None,
        "idle_router": idle,
    }


def redis_cost_chart(result: dict[str, Any], cluster_servers: int, out: Path) -> Path:
    """The router's and Redis's CPU per payment side by side, per Redis setup."""

    def bars(side: dict[str, Any]) -> dict[str, float]:
        return {
            "router": side["router_cpu_us_per_payment"],
            "Redis (all servers)": side["redis_cpu_us_per_payment"],
        }

    return report.grouped_bar_chart(
        {
            "one server": bars(result["single"]),
            "over TLS": bars(result["tls"]),
            "primary + replica": bars(result["replicated"]),
            f"Cluster ({cluster_servers} servers)": bars(result["cluster"]),
        },
        "CPU per payment, by Redis setup (us)",
        "us of CPU",
        out,
    )


async def redis_cost(s: Stack, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """What a payment costs Redis on one durable server (also reached over
    TLS, ``tls``: what encryption adds on both sides), on a durable primary
    whose journal writes wait for a replica (``store.durability.replicas: 1``,
    Sentinel), and on a durable Cluster (every server AOF with fsync
    always), with the router's own cost beside it: the figures the sizing
    model in benchmarks/README.md uses.  Redis's side is what the servers
    count themselves (INFO: CPU time and commands), summed over the servers
    (the replica's replication work included); the busiest server's share
    shows how evenly the payment shards spread over a Cluster."""
    result: dict[str, Any] = {"concurrency": spec["concurrency"]}
    result["single"] = await _redis_side(s, spec, "single")
    assert s.redis is not None
    s.stop(s.redis)  # the same server again, reached over TLS
    s.start_redis(tls=True)
    result["tls"] = await _redis_side(s, {**spec, "idle_workers": []}, "tls")
    await s.start_replicated_redis()
    # a fresh primary, replica and sentinels still sync and discover each
    # other: measured at once, the quiet window came out busier than the
    # idle router's (-5.9 ms/s at 01:14 UTC)
    await asyncio.sleep(spec["idle_settle_s"])
    replicated = {**spec, "idle_workers": spec["replicated_idle_workers"]}
    durable = {"durability": {"replicas": 1, "timeout_ms": 300}}
    result["replicated"] = await _redis_side(s, replicated, "replicated", durable)
    await s.stop_replicated_redis()
    s.start_cluster(spec["cluster_servers"])
    result["cluster"] = await _redis_side(s, spec, "cluster")
    one = result["single"]
    for side in ("tls", "replicated", "cluster"):
        for part in ("redis", "router"):
            result[f"{side}_to_single_{part}_cpu"] = round(
                result[side][f"{part}_cpu_us_per_payment"] / one[f"{part}_cpu_us_per_payment"], 2
            )
    redis_cost_chart(result, spec["cluster_servers"], out / "redis-cost.png")
    return result


async def _post(url: str, body: Any) -> None:
    async with aiohttp.ClientSession() as session:
        await session.request("PUT" if url.endswith("faults") else "POST", url, json=body)


async def _pause(proc: Proc, seconds: float) -> None:
    await asyncio.to_thread(proc.pause)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(proc.resume)


Event = dict[str, Any]
Action = Callable[[Stack, list[Proc], Event], Awaitable[None]]


def _sandbox_url(s: Stack, event: Event) -> str:
    return _url(s.sandboxes[event["target"]])


async def _outage(s: Stack, routers: list[Proc], event: Event) -> None:
    await _post(f"{_sandbox_url(s, event)}/_sandbox/outage", {"seconds": event["seconds"]})


async def _brownout(s: Stack, routers: list[Proc], event: Event) -> None:
    faults = [{"mode": "latency", "latency_ms": event["latency_ms"]}]
    await _post(f"{_sandbox_url(s, event)}/_sandbox/faults", faults)


async def _heal(s: Stack, routers: list[Proc], event: Event) -> None:
    await _post(f"{_sandbox_url(s, event)}/_sandbox/faults", [])


async def _kill_router(s: Stack, routers: list[Proc], event: Event) -> None:
    await asyncio.to_thread(routers[0].kill)


async def _pause_router(s: Stack, routers: list[Proc], event: Event) -> None:
    await _pause(routers[0], event["seconds"])


async def _restart_redis(s: Stack, routers: list[Proc], event: Event) -> None:
    await asyncio.to_thread(s.restart_redis)


async def _restart_postgres(s: Stack, routers: list[Proc], event: Event) -> None:
    """SIGKILL PostgreSQL, leave it down ``seconds``, start it again (WAL recovery)."""
    assert s.postgres is not None
    await asyncio.to_thread(s.postgres.kill)
    await asyncio.sleep(event.get("seconds", 0))
    await asyncio.to_thread(s.postgres.start)


async def _pause_redis(s: Stack, routers: list[Proc], event: Event) -> None:
    assert s.redis is not None
    await _pause(s.redis, event["seconds"])


def _proxy(s: Stack) -> StallingProxy:
    assert s.replicated is not None
    assert s.replicated.proxy is not None
    return s.replicated.proxy


async def _stall_replication(s: Stack, routers: list[Proc], event: Event) -> None:
    assert s.replicated is not None
    s.replicated.stall_replication()


async def _fail_over(s: Stack, routers: list[Proc], event: Event) -> None:
    assert s.replicated is not None
    await s.replicated.fail_over()
    _proxy(s).resume()


async def _fail_over_cluster(s: Stack, routers: list[Proc], event: Event) -> None:
    """SIGKILL the primary serving ``slot`` (0); its replica takes over."""
    assert s.cluster is not None
    await asyncio.to_thread(s.cluster.fail_over, event.get("slot", 0))


ACTIONS: dict[str, Action] = {
    "outage": _outage,
    "brownout": _brownout,
    "heal": _heal,
    "kill_router": _kill_router,
    "pause_router": _pause_router,
    "restart_redis": _restart_redis,
    "restart_postgres": _restart_postgres,
    "pause_redis": _pause_redis,
    "stall_replication": _stall_replication,
    "fail_over": _fail_over,
    "fail_over_cluster": _fail_over_cluster,
}


def _action(s: Stack, routers: list[Proc], event: Event) -> Callable[[], Awaitable[None]]:
    return functools.partial(ACTIONS[event["action"]], s, routers, event)


async def chaos(s: Stack, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    if spec.get("redis") == "replicated":
        await s.start_replicated_redis()
    if spec.get("redis") == "cluster":
        s.start_cluster(spec.get("cluster_servers", 3), spec.get("cluster_replicas", 0))
    if spec.get("ledger") is not None:
        await s.start_postgres()
    config = s.router_config(
        spec.get("store"), spec.get("payments"), spec.get("ledger"), **spec.get("routing", {})
    )
    routers = [s.start_router(config) for _ in range(spec.get("routers", 1))]
    events = [(e["at_s"], _action(s, routers, e)) for e in spec.get("events", [])]
    target = Target([_url(r) for r in routers], headers=AUTH)
    samples = await open_loop(target, spec["rate"], spec["duration_s"], spec["name"], events=events)
    live = next(r for r in routers if r.popen is not None and r.popen.poll() is None)
    ledgers = []
    async with aiohttp.ClientSession() as session:
        for sandbox in s.sandboxes.values():
            async with session.get(f"{_url(sandbox)}/_sandbox/ledger") as resp:
                ledgers.append(await resp.json())
    checked = await checks.verify(_url(live), Target([_url(live)], headers=AUTH), samples, ledgers)
    if s.postgres is not None:
        checked["drain_backlog_after"] = await checks.drained(_url(live), ADMIN, 60)
        checked |= await checks.system_of_record(s.postgres.url, ledgers, samples)
    failed = [
        x for x in samples if x.status >= 400 or x.status == 0 or x.payment_status == "failed"
    ]
    report.plot(
        samples,
        f"{spec['name']} at {spec['rate']}/s",
        out / f"{spec['name']}.png",
        marks=[(e["at_s"], e["action"]) for e in spec.get("events", [])],
    )
    for router in routers:
        s.stop(router)
    return {
        "rate_per_s": spec["rate"],
        "latency_ms": report.latency_summary(samples),
        "outcomes": report.outcome_summary(samples),
        "traffic_share": {a: sum(1 for x in samples if x.acquirer == a) for a in s.sandboxes},
        "failed_payments": len(failed),
        **_returns(spec, samples),
        **checked,
    }


#: a healed acquirer "has its traffic back" in the first second it takes this share
RETURN_SHARE = 0.2


def _returns(spec: dict[str, Any], samples: list[Any]) -> dict[str, Any]:
    """For each heal event: seconds until the healed acquirer took RETURN_SHARE
    of a second's payments again (None: not within the run)."""
    found = {}
    for event in spec.get("events", []):
        if event["action"] != "heal":
            continue
        second = int(event["at_s"])
        back = None
        while second < spec["duration_s"] and back is None:
            placed = [x.acquirer for x in samples if second <= x.started < second + 1]
            if placed and placed.count(event["target"]) / len(placed) >= RETURN_SHARE:
                back = second + 1 - event["at_s"]
            second += 1
        found[f"{event['target']}_traffic_back_after_s"] = back
    return found


#: the system of record's settings per variant of the ledger-cost scenario
LEDGER_VARIANTS: dict[str, dict[str, Any] | None] = {
    "no-ledger": None,
    "external-drain": {"drain": "external"},
    "embedded-drain": {"drain": "embedded"},
}


async def _ledger_variant(
    s: Stack,
    spec: dict[str, Any],
    name: str,
    round_: int,
    split: tuple[set[int], set[int]] | None,
) -> dict[str, Any]:
    ledger = LEDGER_VARIANTS[name]
    config = s.router_config(ledger=ledger)
    router = s.start_router(config)
    drainer = s.start_drainer(config) if ledger and ledger["drain"] == "external" else None
    if split is not None:  # the router and its Redis alone on one CPU
        assert s.redis is not None
        s.pin_all([router, s.redis], *split)
    target = Target([_url(router)], headers=AUTH)
    await open_loop(target, spec["rate"], 1.0, f"{name}-warmup-{round_}", max_tries=1)
    drain_before = drainer.cpu_seconds() if drainer else 0.0
    samples, cpu = await _cpu_window(
        [router],
        open_loop(target, spec["rate"], spec["duration_s"], f"{name}-{round_}", max_tries=1),
    )
    drain_cpu = (drainer.cpu_seconds() - drain_before) if drainer else 0.0
    ok = [x for x in samples if x.status == 201]
    if drainer is not None:
        s.stop(drainer)
    s.stop(router)
    return {
        "router_cpu_ms": 1000 * cpu / max(1, len(ok)),
        "drainer_cpu_ms": 1000 * drain_cpu / max(1, len(ok)),
        "latency": report.latency_summary(samples),
        "errors": len(samples) - len(ok),
    }


async def ledger_cost(s: Stack, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """The hot path with and without the system of record, in one run.

    Each round runs every variant at the same open-loop rate, one after the
    other, so drifts of the machine spread over all of them; the report takes
    the median of the rounds.  The router's own CPU per payment is the hot
    path's cost; an external drainer's CPU is reported beside it."""
    split = cpu_split() if spec.get("pinned") else None
    await s.start_postgres()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in LEDGER_VARIANTS}
    names = list(LEDGER_VARIANTS)
    for round_ in range(spec["rounds"]):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]  # rotate: no variant
        for name in order:  # always runs first, on the emptiest Redis
            runs[name].append(await _ledger_variant(s, spec, name, round_, split))
    result: dict[str, Any] = {
        "rate_per_s": spec["rate"],
        "rounds": spec["rounds"],
        "pinned": {"router_and_redis": sorted(split[0]), "the_rest": sorted(split[1])}
        if split
        else None,
    }
    for name, rounds in runs.items():
        result[name] = {
            "router_cpu_ms_per_payment": round(_median([r["router_cpu_ms"] for r in rounds]), 3),
            "drainer_cpu_ms_per_payment": round(_median([r["drainer_cpu_ms"] for r in rounds]), 3),
            "p50_ms": round(_median([r["latency"]["p50"] for r in rounds]), 2),
            "p99_ms": round(_median([r["latency"]["p99"] for r in rounds]), 2),
            "errors": sum(r["errors"] for r in rounds),
        }
    base = result["no-ledger"]
    for name in ("external-drain", "embedded-drain"):
        result[f"{name}-vs-no-ledger"] = {
            key: round(result[name][key] / base[key], 3) if base[key] else None
            for key in ("router_cpu_ms_per_payment", "p50_ms", "p99_ms")
        }
    report.bar_chart(
        {name: result[name]["router_cpu_ms_per_payment"] for name in LEDGER_VARIANTS},
        f"router CPU per payment at {spec['rate']}/s (ms)",
        "ms of CPU",
        out / "ledger-cost-cpu.png",
    )
    return result


KINDS = {
    "compare": compare,
    "per_core": per_core,
    "redis_cost": redis_cost,
    "scaling": scaling,
    "chaos": chaos,
    "ledger_cost": ledger_cost,
}


async def run(files: list[Path], quick: bool, out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": quick,
        "scenarios": {},
    }
    for path in files:
        spec = yaml.safe_load(path.read_text())
        if quick:
            spec["duration_s"] = max(4, spec["duration_s"] * 2 // 3)
            for event in spec.get("events", []):
                event["at_s"] = event["at_s"] * 2 // 3
                if "seconds" in event:
                    event["seconds"] = max(2, event["seconds"] * 2 // 3)
        print(f"== {spec['name']} ({spec['kind']})", flush=True)
        async with stack(out / "work" / spec["name"]) as s:
            s.start_redis()
            s.start_sandbox("sandbox-a")
            s.start_sandbox("sandbox-b")
            results["scenarios"][spec["name"]] = await KINDS[spec["kind"]](s, spec, out)
        print(json.dumps(results["scenarios"][spec["name"]], indent=1)[:1500], flush=True)
    return results


def _publish(out: Path, results: dict[str, Any], *, partial: bool) -> None:
    """Copy the run's plots and report to benchmarks/results/.  A run of some
    scenarios only replaces those in the published report and keeps the
    others; each scenario records when it was run."""
    published = HERE / "results"
    published.mkdir(exist_ok=True)
    for item in out.iterdir():
        if item.is_file() and item.name != "report.json":
            shutil.copy2(item, published / item.name)
    report_path = published / "report.json"
    merged = json.loads(report_path.read_text()) if partial and report_path.exists() else {}
    runs = merged.get("scenario_started") or dict.fromkeys(
        merged.get("scenarios", {}), merged.get("started")
    )
    for name in results["scenarios"]:
        runs[name] = results["started"]
    top = {k: v for k, v in results.items() if k != "scenarios"}
    merged = {
        **top,
        **merged,  # a partial run keeps the full run's own figures (started, wall_s)
        "scenarios": {**merged.get("scenarios", {}), **results["scenarios"]},
        "scenario_started": runs,
    }
    report_path.write_text(json.dumps(merged, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help="files in benchmarks/scenarios")
    parser.add_argument("--quick", action="store_true", help="shorter runs (make bench)")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument(
        "--publish", action="store_true", help="also copy report and plots to benchmarks/results/"
    )
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="keep out/<time>/work: every process's log and data, to read after a failed check",
    )
    args = parser.parse_args()
    files = (
        [HERE / "scenarios" / f for f in args.scenarios]
        if args.scenarios
        else sorted((HERE / "scenarios").glob("*.yaml"))
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out / stamp
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = asyncio.run(run(files, args.quick, out))
    results["wall_s"] = round(time.monotonic() - started, 1)
    (out / "report.json").write_text(json.dumps(results, indent=2))
    if not args.keep_work:
        shutil.rmtree(out / "work", ignore_errors=True)
    if args.publish:
        _publish(out, results, partial=bool(args.scenarios))
    print(f"report: {out / 'report.json'}  ({results['wall_s']} s)")


if __name__ == "__main__":
    main()
