"""Prometheus metrics, one registry per application.

Counters and histograms are updated where things happen; breaker, health and
config state are read at scrape time from the current Runtime by a collector,
so they can never drift from the objects that decide routing.

Under ``serve --workers N`` every worker writes its counters and histograms
to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess
mode, set up by the supervisor), and whichever worker answers a scrape
aggregates all of them: a scrape shows the fleet of workers, not the one
the connection happened to reach.  The state gauges (breaker, health) are
the answering worker's own view, labelled with its number.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from router.telemetry import logs

if TYPE_CHECKING:
    from router.runtime import Runtime

#: set (by the supervisor of several workers) when metrics live in shared files
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class _StateCollector(Collector):
    def __init__(self, current: Callable[[], Runtime | None]) -> None:
        self._current = current

    def collect(self) -> Iterator[Metric]:
        rt = self._current()
        if rt is None:
            return
        labels = ["acquirer", "worker"]
        breaker = GaugeMetricFamily(
            "payrouter_breaker_state", "0 closed, 1 half-open, 2 open", labels=labels
        )
        healthy = GaugeMetricFamily(
            "payrouter_acquirer_healthy", "1 when active probes pass", labels=labels
        )
        routable = GaugeMetricFamily(
            "payrouter_acquirer_routable", "1 when it takes new payments", labels=labels
        )
        worker = logs.WORKER
        for name, acquirer in rt.acquirers.items():
            breaker.add_metric([name, worker], BREAKER_STATES.get(acquirer.breaker.state, 2))
            healthy.add_metric([name, worker], 1 if acquirer.health.healthy else 0)
            routable.add_metric([name, worker], 1 if acquirer.routable() else 0)
        info = InfoMetricFamily("payrouter_config", "the running config")
        info.add_metric([], {"version": rt.version})
        yield from (breaker, healthy, routable, info)


M = TypeVar("M", Counter, Histogram)


class Bound(Generic[M]):
    """A labelled metric whose children are bound once per label set.

    prometheus-client's ``labels()`` converts every value, takes a lock and
    looks the child up on each call; the payment path asks for the same few
    label sets (all from known names, so the set stays small) on every
    request, so each child is kept after its first use."""

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # the ones every payment touches keep their children bound
        self.requests = Bound(
            Counter(
                "payrouter_http_requests",
                "HTTP requests",
                ["route", "method", "status"],
                registry=r,
            )
        )
        self.request_seconds = Bound(
            Histogram(
                "payrouter_http_request_seconds",
                "HTTP latency",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.outcomes = Bound(
            Counter(
                "payrouter_acquirer_outcomes",
                "acquirer answers, by taxonomy",
                ["acquirer", "operation", "outcome"],
                registry=r,
            )
        )
        self.acquirer_seconds = Bound(
            Histogram(
                "payrouter_acquirer_call_seconds",
                "acquirer call latency",
                ["acquirer"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.failovers = Counter(
            "payrouter_failovers",
            "moves to the next acquirer",
            ["from_acquirer", "reason"],
            registry=r,
        )
        self.idempotency = Counter(
            "payrouter_idempotency", "replays and conflicts", ["result"], registry=r
        )
        self.webhooks_in = Counter(
            "payrouter_webhooks_received",
            "inbound acquirer webhooks",
            ["acquirer", "result"],
            registry=r,
        )
        self.webhooks_out = Counter(
            "payrouter_webhook_deliveries",
            "outbound deliveries",
            ["subscriber", "result"],
            registry=r,
        )
        self.reconciled = Counter(
            "payrouter_reconciled", "items the reconciler resolved", ["kind"], registry=r
        )
        self.reconciler_open = Gauge(
            "payrouter_reconciler_open",
            "items the last reconciler pass found due and could not resolve yet",
            registry=r,
            multiprocess_mode="livesum",  # each worker holds different items
        )
        self.reconciler_shards = Gauge(
            "payrouter_reconciler_shards",
            "shards this worker's reconciler sweeps (the fleet shares them out)",
            registry=r,
            multiprocess_mode="livesum",  # the workers' shares add up to every shard
        )
        self.background_errors = Counter(
            "payrouter_background_errors",
            "errors a background loop survived",
            ["loop"],
            registry=r,
        )
        self.claims_stranded = Counter(
            "payrouter_claims_stranded",
            "claims the store could not complete or release as their request ended, by "
            "what the background retry made of them (released, taken, lapsed, dropped)",
            ["result"],
            registry=r,
        )
        self.store_errors = Counter(
            "payrouter_store_errors",
            "store operations that failed (the answer was a 503)",
            ["reason"],
            registry=r,
        )
        self.ledger_drained = Counter(
            "payrouter_ledger_drained",
            "record versions written to the system of record",
            registry=r,
        )
        self.ledger_errors = Counter(
            "payrouter_ledger_errors", "failed drain batches (retried)", ["error"], registry=r
        )
        self.ledger_backlog = Gauge(
            "payrouter_ledger_backlog",
            "record versions in the outbox not yet in the system of record",
            registry=r,
            multiprocess_mode="livemax",  # every worker sees the same backlog
        )
        #: the state read at scrape time (never aggregated across workers)
        self.live = CollectorRegistry(auto_describe=True)

    def watch(self, current: Callable[[], Runtime | None]) -> None:
        self.live.register(_StateCollector(current))

    def exposition(self) -> bytes:
        """What /metrics answers: every worker's counters when several share
        the metric files, this process's otherwise; then the live state."""
        shared = os.environ.get(MULTIPROCESS_DIR)
        if shared:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        return generate_latest(registry) + generate_latest(self.live)
