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
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks import report
from benchmarks.loadgen import Sample, Target, closed_loop, open_loop
from benchmarks.stack import DEMO_KEY, Proc, Stack, stack

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
    router = s.start_router(s.router_config(default=["sandbox-a"]))
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


async def scaling(s: Stack, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """Closed-loop throughput of 1 and 2 workers on one port."""
    result: dict[str, Any] = {"concurrency": spec["concurrency"]}
    for workers in (1, 2):
        router = s.start_router(s.router_config(), workers=workers)
        target = Target([_url(router)], headers=AUTH)
        await closed_loop(target, spec["concurrency"], 1.5, f"w{workers}-warmup", seed=98)
        samples = await closed_loop(
            target, spec["concurrency"], spec["duration_s"], f"{workers}-worker"
        )
        ok = [x for x in samples if x.status == 201]
        result[f"workers_{workers}"] = {
            "throughput_per_s": round(len(ok) / spec["duration_s"], 1),
            "latency_ms": report.latency_summary(samples),
        }
        s.stop(router)
    one = result["workers_1"]["throughput_per_s"]
    result["speedup_2_vs_1"] = round(result["workers_2"]["throughput_per_s"] / one, 2)
    report.bar_chart(
        {
            f"{w} worker{'s' if w > 1 else ''}": result[f"workers_{w}"]["throughput_per_s"]
            for w in (1, 2)
        },
        "throughput (payments/s)",
        "payments/s",
        out / "workers-throughput.png",
    )
    return result


async def _post(url: str, body: Any) -> None:
    async with aiohttp.ClientSession() as session:
        await session.request("PUT" if url.endswith("faults") else "POST", url, json=body)


def _action(s: Stack, routers: list[Proc], event: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    kind = event["action"]
    sandbox = s.sandboxes.get(event.get("target", ""), None)

    async def run() -> None:
        if kind == "outage":
            assert sandbox is not None
            await _post(f"{_url(sandbox)}/_sandbox/outage", {"seconds": event["seconds"]})
        elif kind == "brownout":
            assert sandbox is not None
            await _post(
                f"{_url(sandbox)}/_sandbox/faults",
                [{"mode": "latency", "latency_ms": event["latency_ms"]}],
            )
        elif kind == "heal":
            assert sandbox is not None
            await _post(f"{_url(sandbox)}/_sandbox/faults", [])
        elif kind == "kill_router":
            await asyncio.to_thread(routers[0].kill)
        elif kind == "restart_redis":
            await asyncio.to_thread(s.restart_redis)

    return run


async def chaos(s: Stack, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    config = s.router_config(**spec.get("routing", {}))
    routers = [s.start_router(config) for _ in range(spec.get("routers", 1))]
    events = [(e["at_s"], _action(s, routers, e)) for e in spec.get("events", [])]
    target = Target([_url(r) for r in routers], headers=AUTH)
    samples = await open_loop(target, spec["rate"], spec["duration_s"], spec["name"], events=events)
    live = next(r for r in routers if r.popen is not None and r.popen.poll() is None)
    unresolved = await _unresolved_after_reconcile(_url(live), samples)
    ledgers = []
    async with aiohttp.ClientSession() as session:
        for sandbox in s.sandboxes.values():
            async with session.get(f"{_url(sandbox)}/_sandbox/ledger") as resp:
                ledgers.append(await resp.json())
    doubles = report.double_charges(ledgers)
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
        "double_charges": len(doubles),
        "double_charged_ids": list(doubles)[:10],
        "lost_payments": len(unresolved),
    }


async def _unresolved_after_reconcile(
    url: str, samples: list[Sample], wait_s: float = 15
) -> list[str]:
    """Accepted payments still pending/unknown once the reconciler had its chance."""
    pending = {x.payment_id for x in samples if x.payment_id}
    deadline = time.monotonic() + wait_s
    async with aiohttp.ClientSession() as session:
        while pending and time.monotonic() < deadline:
            for pid in list(pending):
                async with session.get(f"{url}/v1/payments/{pid}", headers=AUTH) as resp:
                    if resp.status == 200 and (await resp.json())["status"] not in (
                        "pending",
                        "unknown",
                    ):
                        pending.discard(pid)
            if pending:
                await asyncio.sleep(0.5)
    return sorted(pending)


KINDS = {"compare": compare, "scaling": scaling, "chaos": chaos}


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
        with stack(out / "work" / spec["name"]) as s:
            s.start_redis()
            s.start_sandbox("sandbox-a")
            s.start_sandbox("sandbox-b")
            results["scenarios"][spec["name"]] = await KINDS[spec["kind"]](s, spec, out)
        print(json.dumps(results["scenarios"][spec["name"]], indent=1)[:1500], flush=True)
    return results


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
    shutil.rmtree(out / "work", ignore_errors=True)
    if args.publish:
        published = HERE / "results"
        published.mkdir(exist_ok=True)
        for item in out.iterdir():
            shutil.copy2(item, published / item.name)
    print(f"report: {out / 'report.json'}  ({results['wall_s']} s)")


if __name__ == "__main__":
    main()
