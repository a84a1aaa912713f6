"""The live acquirers: adapter plus the per-acquirer resilience state.

``invoke`` is the only way the payment flows talk to an acquirer, so the
request deadline, the circuit breaker and the passive health statistics apply
to every call.  The state objects (breaker, health) outlive config reloads:
an acquirer whose settings did not change keeps its history.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from adapters.base import Adapter
from adapters.errors import AcquirerError, BreakerOpen, DeadlineExhausted, OutcomeUnknown
from router.routing.breakers import AcquirerBreaker
from router.routing.health import AcquirerHealth
from router.telemetry.metrics import Metrics

T = TypeVar("T")


@dataclass
class RoutingState:
    """What routing needs to know of an acquirer (and all ``config explain`` has)."""

    name: str
    kind: str
    breaker: AcquirerBreaker
    health: AcquirerHealth
    weight: int = 1
    priority: int = 100
    drained: bool = False
    test_mode: bool = True

    def routable(self) -> bool:
        """May take NEW payments (follow-on operations ignore this: they are pinned)."""
        return not self.drained and self.health.available() and self.breaker.allows_traffic()


@dataclass
class Acquirer(RoutingState):
    adapter: Adapter = field(kw_only=True)
    metrics: Metrics | None = field(default=None, kw_only=True)


async def invoke(acquirer: Acquirer, call: Callable[[], Awaitable[T]], remaining_s: float) -> T:
    """Run one acquirer call within what is left of the request deadline.

    A deadline that expires before the call starts is NotProcessed; one that
    expires during the call may have cut off a request the acquirer already
    acted on, so it is OutcomeUnknown.
    """
    if remaining_s <= 0:
        raise DeadlineExhausted(acquirer.name)

    async def timed() -> T:
        try:
            async with asyncio.timeout(remaining_s):
                return await call()
        except TimeoutError as exc:
            raise OutcomeUnknown(acquirer.name, "deadline_exceeded") from exc

    started = time.monotonic()
    try:
        result = await acquirer.breaker.call(timed)
    except BreakerOpen:
        raise  # refused before any call: nothing to observe
    except AcquirerError:
        _observe(acquirer, time.monotonic() - started, failed=True)
        raise
    _observe(acquirer, time.monotonic() - started, failed=False)
    return result


def _observe(acquirer: Acquirer, seconds: float, failed: bool) -> None:
    acquirer.health.observe(seconds, failed=failed)
    if acquirer.metrics is not None:
        acquirer.metrics.acquirer_seconds.labels(acquirer.name).observe(seconds)
