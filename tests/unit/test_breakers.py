"""The pybreaker glue: counts what it should, one probe at a time, and neither
a decline nor a cancellation moves it."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime, timedelta

import pytest

from adapters.base import AcquirerResult, ResultStatus
from adapters.declines import Decline, DeclineCode
from adapters.errors import BreakerOpen, IntegrationError, NotProcessed, OutcomeUnknown
from router.routing.breakers import AcquirerBreaker

DECLINE = AcquirerResult(
    ResultStatus.DECLINED, decline=Decline(DeclineCode.DO_NOT_HONOR, "do_not_honor")
)


class Clock:
    """Real time plus whatever the test has moved on (pybreaker stamps real time)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


async def _fail(exc: Exception) -> AcquirerResult:
    raise exc


async def _decline() -> AcquirerResult:
    return DECLINE


async def _trip(breaker: AcquirerBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(NotProcessed):
            await breaker.call(lambda: _fail(NotProcessed("x", "refused")))


async def test_it_opens_after_fail_max_failures_and_then_refuses_without_calling() -> None:
    breaker = AcquirerBreaker("x", fail_max=3, reset_timeout_s=60)
    await _trip(breaker, 3)
    assert breaker.state == "open"
    called = False

    async def would_call() -> AcquirerResult:
        nonlocal called
        called = True
        return DECLINE

    with pytest.raises(BreakerOpen):
        await breaker.call(would_call)
    assert not called


async def test_the_call_that_trips_it_keeps_its_own_outcome_type() -> None:
    """An OutcomeUnknown must never come out as 'breaker open' (= safe to fail over)."""
    breaker = AcquirerBreaker("x", fail_max=1)
    with pytest.raises(OutcomeUnknown):
        await breaker.call(lambda: _fail(OutcomeUnknown("x", "read_timeout")))
    assert breaker.state == "open"


async def test_declines_do_not_count_as_failures() -> None:
    breaker = AcquirerBreaker("x", fail_max=2)
    await _trip(breaker, 1)
    for _ in range(5):
        assert await breaker.call(_decline) is DECLINE
    assert (breaker.state, breaker.fail_counter) == ("closed", 0)


async def test_only_configured_failures_count() -> None:
    breaker = AcquirerBreaker("x", fail_max=1, counted=("outcome_unknown",))
    for exc in (NotProcessed("x", "r"), IntegrationError("x", "auth")):
        with pytest.raises(type(exc)):
            await breaker.call(functools.partial(_fail, exc))
    assert breaker.state == "closed"


async def test_after_the_reset_timeout_exactly_one_probe_runs_at_a_time() -> None:
    clock = Clock()
    breaker = AcquirerBreaker("x", fail_max=1, reset_timeout_s=30, clock=clock)
    await _trip(breaker, 1)
    with pytest.raises(BreakerOpen):
        await breaker.call(_decline)
    clock.advance(31)
    release = asyncio.Event()

    async def slow_probe() -> AcquirerResult:
        await release.wait()
        return AcquirerResult(ResultStatus.APPROVED)

    probe = asyncio.create_task(breaker.call(slow_probe))
    await asyncio.sleep(0)
    assert breaker.state == "half-open"
    with pytest.raises(BreakerOpen) as caught:
        await breaker.call(_decline)
    assert caught.value.reason == "breaker_probe_in_flight"
    release.set()
    assert (await probe).approved
    assert breaker.state == "closed"


async def test_a_failed_probe_opens_it_again() -> None:
    clock = Clock()
    breaker = AcquirerBreaker("x", fail_max=1, reset_timeout_s=30, clock=clock)
    await _trip(breaker, 1)
    clock.advance(31)
    await _trip(breaker, 1)
    assert breaker.state == "open"
    with pytest.raises(BreakerOpen):
        await breaker.call(_decline)


async def test_cancellation_neither_counts_nor_closes() -> None:
    clock = Clock()
    breaker = AcquirerBreaker("x", fail_max=2, reset_timeout_s=30, clock=clock)
    await _trip(breaker, 1)

    started = asyncio.Event()

    async def hang() -> AcquirerResult:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError

    task = asyncio.create_task(breaker.call(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (breaker.state, breaker.fail_counter) == ("closed", 1)

    await _trip(breaker, 1)  # now open
    clock.advance(31)
    started.clear()
    probe = asyncio.create_task(breaker.call(hang))
    await started.wait()
    assert breaker.state == "half-open"
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state == "half-open"  # not closed by the cancelled probe
    assert (await breaker.call(_decline)) is DECLINE  # the gate was released
    assert breaker.state == "closed"
