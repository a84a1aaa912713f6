"""Active probes need rise/fall in a row; passive stats eject outliers."""

from __future__ import annotations

import pytest

from adapters.settings import HealthSettings as HealthPolicy
from router.routing.health import AcquirerHealth


def test_fall_failures_in_a_row_take_it_out_and_rise_successes_bring_it_back() -> None:
    health = AcquirerHealth(HealthPolicy(rise=2, fall=3))
    health.probe_result(False, "refused")
    health.probe_result(False, "refused")
    health.probe_result(True)
    health.probe_result(False, "refused")
    assert health.healthy  # never three in a row
    health.probe_result(False, "refused")
    health.probe_result(False, "refused")
    assert not health.healthy
    assert health.last_probe_error == "refused"
    health.probe_result(True)
    assert not health.healthy
    health.probe_result(True)
    assert health.healthy


def test_latency_and_errors_are_tracked_as_moving_averages() -> None:
    health = AcquirerHealth()
    health.observe(0.100, failed=False, now=10.0)
    assert health.latency_ms(now=10.0) == 100
    health.observe(0.200, failed=True, now=10.0)
    latency = health.latency_ms(now=10.0)
    assert latency is not None
    assert 100 < latency < 200
    assert 0 < health.error_ewma < 1
    assert (health.requests, health.errors) == (2, 1)


def test_an_error_rate_above_the_limit_ejects_for_a_while() -> None:
    health = AcquirerHealth(HealthPolicy(min_requests=4, max_error_rate=0.5, ejection_s=10))
    for i in range(4):
        health.observe(0.01, failed=i > 0, now=100.0 + i)
    assert health.ejected(now=104.0)
    assert not health.available() or health.ejected_until > 0
    assert not health.ejected(now=114.0)


def test_too_few_requests_never_eject() -> None:
    health = AcquirerHealth(HealthPolicy(min_requests=10))
    for i in range(5):
        health.observe(0.01, failed=True, now=float(i))
    assert not health.ejected(now=5.0)


def test_a_latency_average_without_new_traffic_halves_every_half_life() -> None:
    """Otherwise an acquirer that was slow once would never be tried again."""
    health = AcquirerHealth(HealthPolicy(latency_half_life_s=10))
    health.observe(0.160, failed=False, now=100.0)
    assert health.latency_ms(now=100.0) == pytest.approx(160)
    assert health.latency_ms(now=110.0) == pytest.approx(80)
    assert health.latency_ms(now=130.0) == pytest.approx(20)
