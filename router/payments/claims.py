"""Running one mutating request under its idempotency record.

The claim takes the record for (tenant, key) with an owner token and a lease;
:func:`held` runs the work while a heartbeat keeps the lease fresh, and
decides what happens to the record on the way out:

* a final answer (success, decline, refusal) is stored with the records it
  describes, in the flow's own settle commit, and replayed forever;
* an answer that will change (pending, unknown, any retryable refusal) is
  returned but never stored: the lease is released, so the caller's retry
  learns what really happened (resolving an open attempt first);
* anything else (a crash, a store outage, cancellation) releases the lease;
  the records keep their journal, so the next owner resolves whatever was
  in flight at the same acquirer with the same key.

A closing write the store cannot take (it is out) is tried again in the
background until the lease would lapse anyway (:mod:`router.payments.stranded`),
so a caller's retry after a store outage is not refused for a whole lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson

from adapters.base import Operation
from adapters.values import frozen
from router.payments.answers import problem_answer
from router.payments.context import ApiResult, Call
from router.payments.journal import Draft
from router.payments.records import Record, Source, StoredResponse
from router.payments.steps import Step, When
from router.problems import Problem, outcome_not_recorded
from router.store.protocol import (
    Busy,
    Claimed,
    ClaimRequest,
    Commit,
    Finish,
    Lease,
    LeaseLost,
    Mismatch,
    NotDurable,
    Replay,
    StoreUnavailable,
)

log = logging.getLogger(__name__)


@frozen
class Run:
    """One claimed execution: the handle through which the records are finished."""

    call: Call
    scope: str
    shard: int
    resource_id: str

    def lease(self, result: ApiResult | None) -> Lease:
        """Complete with a final answer, release for one that will change, keep
        the lease while still working (``None``)."""
        owner = self.call.owner
        if result is None:
            return Lease(self.scope, owner)
        if not result.final:
            return Lease(self.scope, owner, Finish.RELEASE)
        return Lease(self.scope, owner, Finish.COMPLETE, stored(result))

    def keeping(self, *_records: Record) -> Lease:
        """For a commit made while still working (a write-ahead)."""
        return self.lease(None)

    def answered_with(self, result: ApiResult, *_records: Record) -> Lease:
        return self.lease(result)


async def settle(
    run: Run,
    draft: Draft,
    source: Source,
    operation: Operation,
    answer: Callable[..., ApiResult],
    *,
    after_call: bool,
    **recorded: str,
) -> ApiResult:
    """A flow's settling commit: ``answer`` (of the records as committed) is
    stored with them, and returned, so the caller gets the very answer that
    was stored.  When this fails after the acquirer was called, money may
    have moved: 503 outcome_not_recorded naming ``recorded`` (the record a
    retry will find), never the store's plain 503."""
    hooks = run.call.rt.hooks
    answered: list[ApiResult] = []

    def lease(*records: Record) -> Lease:
        answered.append(answer(*records))  # again on each retry of a lost race
        return run.lease(answered[-1])

    hooks.at(operation, Step.SETTLE, When.BEFORE)
    try:
        await draft.commit(source, lease=lease)
    except StoreUnavailable as exc:
        if after_call:
            raise outcome_not_recorded(**recorded) from exc
        raise
    hooks.at(operation, Step.SETTLE, When.AFTER)
    return answered[-1]


def stored(result: ApiResult) -> StoredResponse:
    # validated, though every field is ours: pydantic's validation runs in Rust
    # and costs about half of what model_construct's Python does (1.5 vs 2.9 us)
    return StoredResponse(
        status=result.status,
        body=orjson.dumps(result.body).decode(),
        headers={**result.headers, "Content-Type": result.content_type},
    )


def replayed(response: StoredResponse) -> ApiResult:
    headers = dict(response.headers)
    content_type = headers.pop("Content-Type", "application/json")
    return ApiResult(
        response.status,
        orjson.loads(response.body),
        headers,
        replayed=True,
        content_type=content_type,
    )


async def claim(call: Call, operation: Operation, request: ClaimRequest) -> Claimed | ApiResult:
    """Claim the record; a replay is answered at once, a conflict refused."""
    hooks = call.rt.hooks
    hooks.at(operation, Step.CLAIM, When.BEFORE)
    try:
        outcome = await call.rt.store.claim(request)
    except NotDurable:
        # written on the primary but not on a replica: nothing may act on it; give the
        # claim back so the caller's retry need not wait out the lease
        await release(Run(call, request.scope, request.shard, request.resource_id))
        raise
    except StoreUnavailable:
        # taken, perhaps, before the reply was lost: given back once the store is back
        run = Run(call, request.scope, request.shard, request.resource_id)
        _strand(run, Lease(run.scope, call.owner, Finish.RELEASE))
        raise
    hooks.at(operation, Step.CLAIM, When.AFTER)
    if isinstance(outcome, Replay):
        return replayed(outcome.response)
    if isinstance(outcome, Mismatch):
        return problem_answer(
            Problem(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request",
            )
        )
    if isinstance(outcome, Busy):
        seconds = max(1, -(-outcome.retry_after_ms // 1000))
        return problem_answer(
            Problem(
                409,
                "idempotency_request_in_flight",
                "a request with this Idempotency-Key is still being processed; retry later",
                headers={"Retry-After": str(min(seconds, 5))},
                retryable=True,
            )
        )
    return outcome


async def finish(run: Run, result: ApiResult) -> None:
    """Store a final answer that changed no record, or release for a retryable
    one.  Best effort: if the store cannot take it, the answer still goes out
    (a retry computes it again) and the write is tried again in the
    background (:mod:`router.payments.stranded`)."""
    await _close(run, run.lease(result))


async def release(run: Run) -> None:
    """Give the claim back; the records keep their journal for the next owner."""
    await _close(run, Lease(run.scope, run.call.owner, Finish.RELEASE))


async def _close(run: Run, lease: Lease) -> None:
    try:
        await run.call.rt.store.commit(Commit(shard=run.shard, lease=lease, durable=False))
    except LeaseLost as exc:
        log.warning("could not finish the claim on %s (%s)", run.scope[:12], exc)
    except StoreUnavailable as exc:
        log.warning("could not finish the claim on %s (%s)", run.scope[:12], exc)
        _strand(run, lease)


def _strand(run: Run, lease: Lease) -> None:
    rt = run.call.rt
    dropped = rt.stranded.add(run.shard, lease, rt.lease_ms)
    if dropped is not None:
        rt.metrics.claims_stranded.labels(dropped.value).inc()


async def held(run: Run, work: Callable[[], Awaitable[ApiResult]]) -> ApiResult:
    heartbeat = _Heartbeat(run)
    try:
        try:
            return await work()
        except Problem as problem:
            result = problem_answer(problem)
            await finish(run, result)
            return result
    except LeaseLost as exc:
        raise Problem(
            409,
            "idempotency_lease_lost",
            "another instance took over this request; retry with the same key",
            headers={"Retry-After": "1"},
            retryable=True,
        ) from exc
    except (Exception, asyncio.CancelledError):
        await release(run)
        raise
    finally:
        heartbeat.stop()


class _Heartbeat:
    """Keep a live owner's lease fresh, so the lease can be short: a crashed
    instance's work is taken over within one lease, not one request deadline.

    Most requests end long before their first beat is due, so the beat is a
    timer until then and becomes a task only for a request that outlives it:
    a payment costs a timer handle, not a task.  Missing a beat is safe: a
    takeover resolves the journal at the same acquirer with the same acquirer
    key, and this owner's next write fails."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._every_s = run.call.rt.lease_ms / 3000
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(self._every_s, self._start)

    def _start(self) -> None:
        self._task = asyncio.ensure_future(self._beat())

    def stop(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()

    async def _beat(self) -> None:
        run, rt = self._run, self._run.call.rt
        while True:
            try:
                if not await rt.store.extend_lease(
                    run.shard, run.scope, run.call.owner, rt.lease_ms
                ):
                    log.warning("lease on %s lost to another owner", run.scope[:12])
                    return
            except StoreUnavailable:
                log.warning("could not renew the lease on %s (store unavailable)", run.scope[:12])
            await asyncio.sleep(self._every_s)
