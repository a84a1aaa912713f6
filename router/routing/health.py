"""Acquirer health: active probes (rise/fall) and passive stats from live traffic.

Active: every ``interval_s`` each acquirer's ``health()`` is called; ``fall``
consecutive failures take it out of rotation, ``rise`` consecutive successes
bring it back.

Passive: each live call feeds an EWMA of latency and of the error rate (what
the least-latency and success-rate balancers read), and a sliding window that
ejects an outlier for ``ejection_s`` when its error rate crosses the limit.
A decline is a success here: the acquirer did its job.

The latency average forgets: read with :meth:`AcquirerHealth.latency_ms`, it
halves every ``latency_half_life_s`` without a new observation, and a
measurement after ``latency_recheck_s`` of silence replaces it instead of
being blended in (an average that old describes a past acquirer).  Otherwise
an acquirer that was slow for a while and then got no traffic would keep its
bad average for most of a minute; the least-latency balancer sends it one
request per ``latency_recheck_s`` to measure it anew.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adapters.errors import AcquirerError
from adapters.settings import HealthSettings

if TYPE_CHECKING:
    from router.routing.acquirers import Acquirer

log = logging.getLogger(__name__)

EWMA_ALPHA = 0.2


@dataclass
class AcquirerHealth:
    policy: HealthSettings = field(default_factory=HealthSettings)
    healthy: bool = True
    consecutive_ok: int = 0
    consecutive_fail: int = 0
    last_probe_error: str | None = None
    latency_ewma_ms: float | None = None
    latency_seen_at: float = 0.0
    error_ewma: float = 0.0
    requests: int = 0
    errors: int = 0
    ejected_until: float = 0.0
    _window: deque[tuple[float, bool]] = field(default_factory=deque, repr=False)
    _window_failures: int = field(default=0, repr=False)

    # ---------------------------------------------------------------- active
    def probe_result(self, ok: bool, error: str | None = None) -> None:
        if ok:
            self.consecutive_ok += 1
            self.consecutive_fail = 0
            self.last_probe_error = None
            if not self.healthy and self.consecutive_ok >= self.policy.rise:
                self.healthy = True
                log.info("acquirer healthy again")
        else:
            self.consecutive_fail += 1
            self.consecutive_ok = 0
            self.last_probe_error = error
            if self.healthy and self.consecutive_fail >= self.policy.fall:
                self.healthy = False
                log.warning("acquirer unhealthy: %s", error)

    # --------------------------------------------------------------- passive
    def observe(self, latency_s: float, failed: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        ms = latency_s * 1000
        current = self.latency_ms(now)
        stale = now - self.latency_seen_at >= self.policy.latency_recheck_s
        self.latency_ewma_ms = (
            ms if current is None or stale else (1 - EWMA_ALPHA) * current + EWMA_ALPHA * ms
        )
        self.latency_seen_at = now
        self.error_ewma = (1 - EWMA_ALPHA) * self.error_ewma + EWMA_ALPHA * (1.0 if failed else 0.0)
        self.requests += 1
        self.errors += int(failed)
        self._window.append((now, failed))
        self._window_failures += failed
        horizon = now - self.policy.window_s
        while self._window and self._window[0][0] < horizon:
            self._window_failures -= self._window.popleft()[1]
        if len(self._window) >= self.policy.min_requests:
            rate = self._window_failures / len(self._window)
            if rate > self.policy.max_error_rate and self.ejected_until <= now:
                self.ejected_until = now + self.policy.ejection_s
                self._window.clear()
                self._window_failures = 0
                log.warning("acquirer ejected as an outlier (error rate %.0f%%)", rate * 100)

    def latency_ms(self, now: float | None = None) -> float | None:
        """The latency average, decayed by the time since it was last fed."""
        if self.latency_ewma_ms is None:
            return None
        now = time.monotonic() if now is None else now
        idle = max(0.0, now - self.latency_seen_at)
        decay: float = 0.5 ** (idle / self.policy.latency_half_life_s)
        return self.latency_ewma_ms * decay

    def ejected(self, now: float | None = None) -> bool:
        return self.ejected_until > (time.monotonic() if now is None else now)

    @property
    def success_rate(self) -> float:
        return 1.0 - self.error_ewma

    def available(self) -> bool:
        return self.healthy and not self.ejected()


async def probe(health: AcquirerHealth, check: Callable[[], Awaitable[None]]) -> None:
    """One active probe; ``check`` is the adapter's ``health`` method."""
    try:
        async with asyncio.timeout(health.policy.timeout_s):
            await check()
    except (AcquirerError, TimeoutError) as exc:
        health.probe_result(False, getattr(exc, "reason", "timeout"))
        return
    health.probe_result(True)


async def health_loop(current: Callable[[], Mapping[str, Acquirer]]) -> None:
    """Probe every acquirer of the *current* config, each on its own interval."""
    next_due: dict[str, float] = {}
    while True:
        acquirers = current()
        now = time.monotonic()
        due = [a for name, a in acquirers.items() if next_due.get(name, 0.0) <= now]
        for acquirer in due:
            next_due[acquirer.name] = now + acquirer.health.policy.interval_s
        if due:
            await asyncio.gather(*(probe(a.health, a.adapter.health) for a in due))
        interval = min((a.health.policy.interval_s for a in acquirers.values()), default=1.0)
        await asyncio.sleep(min(0.25, interval / 4))
