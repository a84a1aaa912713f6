"""The pybreaker glue: counts what it should, one probe at a time, and neither
a decline nor a cancellation moves it."""

from __future__ import annotations

import asyncio

import pytest

from adapters.base import (
    AcquirerResult,
    IntegrationError,
    NotProcessed,
    OutcomeUnknown,
    ResultStatus,
)
from router.breakers import AcquirerBreaker

DECLINE = AcquirerResult(ResultStatus.DECLINED, decline_code="do_not_honor")


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

    with pytest.raises(NotProcessed) as caught:
        await breaker.call(would_call)
    assert caught.value.reason == "breaker_open"
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
            await breaker.call(lambda e=exc: _fail(e))
    assert breaker.state == "closed"


async def test_after_the_reset_timeout_exactly_one_probe_runs_at_a_time() -> None:
    breaker = AcquirerBreaker("x", fail_max=1, reset_timeout_s=0.05)
    await _trip(breaker, 1)
    await asyncio.sleep(0.06)
    release = asyncio.Event()

    async def slow_probe() -> AcquirerResult:
        await release.wait()
        return AcquirerResult(ResultStatus.APPROVED)

    probe = asyncio.create_task(breaker.call(slow_probe))
    await asyncio.sleep(0)
    assert breaker.state == "half-open"
    with pytest.raises(NotProcessed) as caught:
        await breaker.call(_decline)
    assert caught.value.reason == "breaker_probe_in_flight"
    release.set()
    assert (await probe).approved
    assert breaker.state == "closed"


async def test_a_failed_probe_opens_it_again() -> None:
    breaker = AcquirerBreaker("x", fail_max=1, reset_timeout_s=0.05)
    await _trip(breaker, 1)
    await asyncio.sleep(0.06)
    await _trip(breaker, 1)
    assert breaker.state == "open"


async def test_cancellation_neither_counts_nor_closes() -> None:
    breaker = AcquirerBreaker("x", fail_max=2, reset_timeout_s=0.05)
    await _trip(breaker, 1)

    async def hang() -> AcquirerResult:
        await asyncio.sleep(10)
        raise AssertionError

    task = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (breaker.state, breaker.fail_counter) == ("closed", 1)

    await _trip(breaker, 1)  # now open
    await asyncio.sleep(0.06)
    probe = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0.01)
    assert breaker.state == "half-open"
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state == "half-open"  # not closed by the cancelled probe
    assert (await breaker.call(_decline)) is DECLINE  # the gate was released
    assert breaker.state == "closed"
