"""pybreaker glue for asyncio: one breaker per acquirer.

pybreaker has no asyncio support and its ``calling()`` context manager has no
neutral exit: a cancelled call inside it would count as a failure (or, if
excluded, as a success that closes a half-open breaker).  So admission and
accounting are split:

* **admission** (before the call): closed admits; open refuses with
  :class:`BreakerOpen` until the reset timeout has passed; then exactly ONE
  probe is admitted at a time, guarded by an asyncio gate.
* **accounting** (after the call): the outcome is replayed into pybreaker's own
  state machine with ``with breaker.calling(): raise outcome``, so its
  counters, transitions, listeners and default in-memory storage stay the
  source of truth.
* **cancellation** is neither: the gate is released, nothing is recorded.

``throw_new_error_on_trip=False`` matters for money: pybreaker would otherwise
replace the exception of the call that trips the breaker with its own
CircuitBreakerError, and an OutcomeUnknown turned into "breaker open" would
look safe to fail over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker

from adapters.errors import (
    AcquirerError,
    BreakerOpen,
    IntegrationError,
    NotProcessed,
    OutcomeUnknown,
)

T = TypeVar("T")

_COUNTED: dict[str, type[AcquirerError]] = {
    "not_processed": NotProcessed,
    "outcome_unknown": OutcomeUnknown,
    "integration_error": IntegrationError,
}


class AcquirerBreaker:
    def __init__(
        self,
        name: str,
        fail_max: int = 5,
        reset_timeout_s: float = 10.0,
        counted: tuple[str, ...] = ("not_processed", "outcome_unknown", "integration_error"),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``clock`` tells when the breaker opened and when its reset timeout is
        over, so a test can move time on instead of sleeping."""
        self.name = name
        self._clock = clock
        self._counted = tuple(_COUNTED[c] for c in counted)
        self._opened_at: datetime | None = None
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            throw_new_error_on_trip=False,
            name=name,
            listeners=[_OpenedAt(self)],
        )
        self._probe = asyncio.Lock()

    @property
    def state(self) -> str:
        """closed | open | half-open, as pybreaker names them."""
        return str(self._breaker.current_state)

    @property
    def fail_counter(self) -> int:
        return int(self._breaker.fail_counter)

    def _reset_elapsed(self) -> bool:
        opened = self._opened_at
        if opened is None:
            return True
        return self._clock() >= opened + timedelta(seconds=self._breaker.reset_timeout)

    def allows_traffic(self) -> bool:
        """For routing: would a call be admitted now (ignoring a probe in flight)?"""
        return self.state == pybreaker.STATE_CLOSED or self._reset_elapsed()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        state = self.state
        if state == pybreaker.STATE_CLOSED:
            return await self._run(fn)
        if state == pybreaker.STATE_OPEN and not self._reset_elapsed():
            raise BreakerOpen(self.name)
        if self._probe.locked():
            raise BreakerOpen(self.name, "breaker_probe_in_flight")
        async with self._probe:
            if self.state == pybreaker.STATE_OPEN:
                self._breaker.half_open()
            return await self._run(fn)

    async def _run(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await fn()
        except asyncio.CancelledError:
            raise  # neither success nor failure: the caller went away
        except AcquirerError as exc:
            self._record(exc if isinstance(exc, self._counted) else None)
            raise
        self._record(None)
        return result

    def _record(self, failure: AcquirerError | None) -> None:
        """Feed one outcome through pybreaker's state machine.  A success on a
        closed breaker with no failure counted changes nothing there (our one
        listener watches state changes only), so the common case skips it."""
        breaker = self._breaker
        closed = breaker.current_state == pybreaker.STATE_CLOSED
        if failure is None and closed and not breaker.fail_counter:
            return
        try:
            with self._breaker.calling():
                if failure is not None:
                    raise failure
        except pybreaker.CircuitBreakerError:
            pass  # opened meanwhile by other calls; this late outcome changes nothing
        except AcquirerError as exc:
            if exc is not failure:
                raise


class _OpenedAt(pybreaker.CircuitBreakerListener):
    """Stamps the moment the breaker opens, on the breaker's own clock."""

    def __init__(self, owner: AcquirerBreaker) -> None:
        self._owner = owner

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        if new_state.name == pybreaker.STATE_OPEN:
            self._owner._opened_at = self._owner._clock()
