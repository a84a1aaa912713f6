"""Numbers and pictures from a run's samples."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt

from benchmarks.loadgen import Sample


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


#: Student's t at 97.5% for 1..30 degrees of freedom (a two-sided 95% interval)
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def ratio_interval(ratios: list[float]) -> tuple[float, float]:
    """A 95% interval for the geometric mean of per-round ratios (a t
    interval on their logarithms).  The rounds' spread on this machine is
    wide enough that a geometric mean alone invites reading noise as a
    result: an interval that holds 1.0 shows no difference."""
    if len(ratios) < 2:
        raise ValueError("an interval needs at least two rounds")
    logs = [math.log(r) for r in ratios]
    n = len(logs)
    mean = sum(logs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    half = _T975[min(n - 1, len(_T975)) - 1] * sd / math.sqrt(n)
    return round(math.exp(mean - half), 3), round(math.exp(mean + half), 3)


def latency_summary(samples: list[Sample]) -> dict[str, float]:
    ms = [s.latency_s * 1000 for s in samples if s.status and s.status < 500]
    return {f"p{q}": round(percentile(ms, q), 2) for q in (50, 90, 99, 99.9)} | {"count": len(ms)}


def outcome_summary(samples: list[Sample]) -> dict[str, Any]:
    statuses = Counter(str(s.status) for s in samples)
    payment = Counter(str(s.payment_status) for s in samples)
    return {
        "http": dict(statuses),
        "payments": dict(payment),
        "retried": sum(1 for s in samples if s.tries > 1),
    }


def _buckets(samples: list[Sample]) -> dict[int, list[Sample]]:
    by_second: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_second[int(s.started + s.latency_s)].append(s)
    return by_second


def plot(
    samples: list[Sample], title: str, out: Path, marks: list[tuple[float, str]] | None = None
) -> Path:
    """Latency percentiles, throughput and traffic share per acquirer over time."""
    buckets = _buckets(samples)
    seconds = sorted(buckets)
    acquirers = sorted({s.acquirer for s in samples if s.acquirer})
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    lat = axes[0]
    for q, style in ((50, "-"), (99, "--")):
        lat.plot(
            seconds,
            [percentile([s.latency_s * 1000 for s in buckets[t]], q) for t in seconds],
            style,
            label=f"p{q}",
        )
    lat.set_ylabel("latency (ms)")
    lat.set_yscale("log")
    lat.legend(loc="upper right")
    lat.set_title(title)
    axes[1].bar(seconds, [len(buckets[t]) for t in seconds], color="tab:green")
    axes[1].set_ylabel("completed / s")
    bottom = [0.0] * len(seconds)
    for acquirer in acquirers:
        share = [
            sum(1 for s in buckets[t] if s.acquirer == acquirer) / max(1, len(buckets[t]))
            for t in seconds
        ]
        axes[2].bar(seconds, share, bottom=bottom, label=acquirer)
        bottom = [b + v for b, v in zip(bottom, share, strict=True)]
    axes[2].set_ylabel("traffic share")
    axes[2].set_xlabel("seconds into the run")
    if acquirers:
        axes[2].legend(loc="upper right")
    for at, label in marks or []:
        for ax in axes:
            ax.axvline(at, color="red", linestyle=":")
        axes[0].annotate(
            label,
            (at, 1),
            xycoords=("data", "axes fraction"),
            textcoords="offset points",
            xytext=(3, -12),
            color="red",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def bar_chart(values: dict[str, float], title: str, ylabel: str, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(
        list(values),
        list(values.values()),
        color=["tab:gray", "tab:blue", "tab:orange"][: len(values)],
    )
    for i, v in enumerate(values.values()):
        ax.annotate(f"{v:.2f}", (i, v), ha="center", va="bottom", fontsize=9)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def grouped_bar_chart(
    groups: dict[str, dict[str, float]], title: str, ylabel: str, out: Path
) -> Path:
    """Bars side by side within each group (the same series in every group),
    each labelled with its value: for figures compared across setups."""
    series = list(next(iter(groups.values())))
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(series)
    colors = ["tab:gray", "tab:blue", "tab:orange", "tab:green"]
    for j, name in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        ys = [group[name] for group in groups.values()]
        ax.bar(xs, ys, width, label=name, color=colors[j % len(colors)])
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(f"{y:,.0f}", (x, y), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def added_latency_chart(per_core: dict[str, Any], out: Path) -> Path:
    """What the bare proxy and the router add over the direct call, with the
    journal's writes waiting for the disk and without, against the targets:
    the figure that shows how much of the gap is the machine's disk."""
    sides = {"bare journaled proxy": "baseline", "payrouter": "router"}
    bare = per_core["without_disk_wait"]
    bars = {
        "p50": [per_core["baseline_added_p50_ms"], per_core["added_p50_ms"]],
        "p50, no disk wait": [bare[k]["added_p50_ms"] for k in sides.values()],
        "p99": [per_core["baseline_added_p99_ms"], per_core["added_p99_ms"]],
        "p99, no disk wait": [bare[k]["added_p99_ms"] for k in sides.values()],
    }
    colours = ["tab:blue", "lightsteelblue", "tab:orange", "navajowhite"]
    closed = per_core.get("closed_loop_latency", {})
    if "direct" in closed:  # the issue's own measure: a closed loop of a few callers
        callers = closed["connections"]
        bars[f"p50, {callers} callers"] = [closed[k]["added_p50_ms"] for k in sides.values()]
        bars[f"p99, {callers} callers"] = [closed[k]["added_p99_ms"] for k in sides.values()]
        colours += ["tab:green", "darkseagreen"]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars.items()):
        xs = [x + (i - (len(bars) - 1) / 2) * width for x in range(len(sides))]
        ax.bar(xs, values, width, label=label, color=colours[i], edgecolor="dimgray")
        for x, v in zip(xs, values, strict=True):
            ax.annotate(f"{v:.1f}", (x, v), ha="center", va="bottom", fontsize=8)
    targets = per_core["targets"]
    ax.axhline(targets["added_p50_ms"], color="tab:blue", lw=1, ls="--", label="target p50")
    ax.axhline(targets["added_p99_ms"], color="tab:orange", lw=1, ls="--", label="target p99")
    ax.set_xticks(range(len(sides)), list(sides))
    ax.set_ylabel("ms over the direct call")
    ax.set_title(
        f"Added latency at {per_core['latency_rate_per_s']}/s (and with a few callers), "
        "one pinned core"
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
