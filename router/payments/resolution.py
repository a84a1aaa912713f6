"""The failover rule, in one place.

* ``NotProcessed``   -> the attempt is journaled as such; the caller may try
  the next acquirer.
* ``OutcomeUnknown`` -> never another acquirer.  Replay at the SAME acquirer
  with the SAME acquirer key (bounded), then ask it for the status; if it still
  cannot say, the operation is ``unknown`` and the reconciler takes over.
* an attempt left open by a dead instance (or by a store failure after the
  call) is resolved the same way before any other acquirer may be tried.

Every attempt is written ahead of its call; this module only calls and
resolves.  The flows (create, follow-on, refunds) decide what to record.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from adapters.base import AcquirerResult, sleep_backoff
from adapters.errors import AcquirerError, IntegrationError, NotProcessed, OutcomeUnknown
from router.payments.context import Call, Intent
from router.payments.steps import Step, When
from router.problems import Problem
from router.routing.acquirers import Acquirer, invoke
from router.telemetry import tracing

if TYPE_CHECKING:  # the otel extra may be absent at run time
    from opentelemetry.trace import Span

log = logging.getLogger(__name__)

#: a resolution (replays + status query) gets at least this long, deadline or not
RESOLVE_FLOOR_S = 2.0


def acquirer_of(call: Call, name: str) -> Acquirer:
    """The acquirer an operation is pinned to.  Its absence (a reload removed
    it) is a retryable 503: the answer must change once it is back."""
    acquirer = call.rt.acquirers.get(name)
    if acquirer is None:
        raise Problem(
            503,
            "acquirer_not_configured",
            f"acquirer {name!r} holds this payment but is not in the current config",
            retryable=True,
            headers={"Retry-After": "30"},
        )
    return acquirer


async def call_acquirer(
    call: Call, acquirer: Acquirer, intent: Intent, key: str
) -> AcquirerResult | None:
    """Send a journaled attempt.  None: still unknown after resolving at the
    same acquirer.  NotProcessed and IntegrationError propagate: nothing to
    resolve, the caller journals them."""
    hooks, operation = call.rt.hooks, intent.operation
    hooks.at(operation, Step.CALL, When.BEFORE)
    with call.rt.tracing.attempt(acquirer.name, operation) as span:
        try:
            result: AcquirerResult | None = await invoke(
                acquirer,
                functools.partial(intent.send, acquirer.adapter, key),
                call.deadline.remaining(),
            )
        except OutcomeUnknown as exc:
            log.warning("outcome unknown at %s (%s): resolving there", acquirer.name, exc.reason)
            tracing.note(span, first_answer="outcome_unknown", reason=exc.reason)
            result = await resolve(call, acquirer, intent, key, None, replayable=exc.replayable)
        except NotProcessed as exc:
            _count(call, acquirer, intent, "not_processed", span, exc.reason)
            raise
        except IntegrationError as exc:
            _count(call, acquirer, intent, "integration_error", span, exc.reason)
            tracing.failed(span, exc.reason)
            raise
        hooks.at(operation, Step.CALL, When.AFTER)
        decline = result.decline.code if result and result.decline else None
        _count(call, acquirer, intent, result.status if result else "unknown", span, decline)
    return result


async def resolve(
    call: Call,
    acquirer: Acquirer,
    intent: Intent,
    key: str,
    reference: str | None,
    *,
    replayable: bool = True,
) -> AcquirerResult | None:
    """Find out what an ambiguous request did, asking only the acquirer it went to."""
    replays = call.rt.config.payments.same_acquirer_replays if replayable else 0
    budget = max(call.deadline.remaining(), RESOLVE_FLOOR_S)
    for replay in range(replays):
        await sleep_backoff(replay)
        try:
            return await invoke(
                acquirer, functools.partial(intent.send, acquirer.adapter, key), budget
            )
        except IntegrationError:
            break
        except AcquirerError as exc:
            log.info("replay %d at %s did not resolve: %s", replay + 1, acquirer.name, exc.reason)
    query = intent.query(key, reference)
    try:
        return await invoke(acquirer, functools.partial(acquirer.adapter.status, query), budget)
    except AcquirerError as exc:
        log.info("status query at %s did not resolve: %s", acquirer.name, exc.reason)
        return None


def _count(
    call: Call,
    acquirer: Acquirer,
    intent: Intent,
    outcome: str,
    span: Span | None = None,
    reason: str | None = None,
) -> None:
    """The outcome of one attempt, in the metrics and on its span."""
    call.rt.metrics.outcomes.labels(acquirer.name, intent.operation, outcome).inc()
    tracing.note(span, outcome=outcome, reason=reason)
