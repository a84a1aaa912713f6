"""Running one mutating request under its idempotency record.

``run_idempotent`` claims the record, hands the work a :class:`Run` that can
journal attempts ahead of acquirer calls, and completes the record with the
response.  What happens on the way out is the safety-critical part:

* a final answer (success, decline, refusal) is stored and replayed forever;
* an answer that is not final yet (pending, unknown) is returned but not
  stored: the lease is released with the journal intact, so a retry resolves
  the open attempt at the same acquirer and answers with what really happened;
* a retryable refusal decided before anything was sent releases the lease, so
  the caller's retry with the same key starts over (same resource id);
* anything else (a crash, a store outage, cancellation) leaves the record
  in flight: the lease expires and the next retry resolves the journal.
  (StoreUnavailable itself becomes a 503 at the HTTP boundary.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from router.idempotency.protocol import (
    Busy,
    Claimed,
    LeaseLost,
    Mismatch,
    Replay,
    Store,
    StoreUnavailable,
)
from router.problems import Problem
from router.records import Attempt, IdemRecord, StoredResponse

log = logging.getLogger(__name__)

_SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class ApiResult:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False
    content_type: str = "application/json"
    #: False for answers that will change (pending, unknown): not stored, so the
    #: caller's retry resolves the open attempt and gets the real answer
    final: bool = True


def fingerprint(method: str, path: str, body: Any) -> str:
    """Canonical: the same request in other whitespace or key order is the same."""
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def scope_of(caller: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{caller}{_SEP}{idempotency_key}".encode()).hexdigest()[:40]


def derive_acquirer_key(
    caller: str, idempotency_key: str, resource_id: str, acquirer: str, operation: str
) -> str:
    """Deterministic, so any instance regenerates the key a dead one used.

    The resource id is part of it: once our record has expired and the caller
    reuses its key for a new payment, the acquirer sees a new key too.
    """
    material = _SEP.join((caller, idempotency_key, resource_id, acquirer, operation))
    return "pr_" + hashlib.sha256(material.encode()).hexdigest()[:48]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Run:
    """One claimed execution; the only handle through which attempts are journaled."""

    def __init__(
        self,
        store: Store,
        scope: str,
        owner: str,
        record: IdemRecord,
        lease_ms: int,
        taken_over: bool,
    ) -> None:
        self.store = store
        self.scope = scope
        self.owner = owner
        self.record = record
        self.lease_ms = lease_ms
        self.taken_over = taken_over
        self.wrote_attempt = bool(record.attempts)
        #: a definite answer's journal line, written together with complete()
        self.deferred: tuple[int, Attempt] | None = None

    @property
    def resource_id(self) -> str:
        return self.record.resource_id

    async def journal(self, attempt: Attempt) -> int:
        """Write ahead: after this returns, and only then, may bytes go out."""
        await self.flush()
        self.wrote_attempt = True
        index = await self.store.write_attempt(self.scope, self.owner, attempt, self.lease_ms)
        self.record.attempts.append(attempt)
        return index

    async def settle(self, index: int, attempt: Attempt, *, defer: bool = False) -> None:
        """Record an attempt's outcome.  ``defer`` holds a definite answer back
        to be written with the completion (one round trip less); should the
        process die first, the attempt is still open and a retry replays it at
        the same acquirer with the same key, which answers the same."""
        await self.flush()
        self.record.attempts[index] = attempt
        if defer:
            self.deferred = (index, attempt)
        else:
            await self.store.settle_attempt(self.scope, self.owner, index, attempt)

    async def flush(self) -> None:
        if self.deferred is not None:
            index, attempt = self.deferred
            self.deferred = None
            await self.store.settle_attempt(self.scope, self.owner, index, attempt)


def _stored(result: ApiResult) -> StoredResponse:
    return StoredResponse(
        status=result.status,
        body=orjson.dumps(result.body).decode(),
        headers={**result.headers, "Content-Type": result.content_type},
    )


def _replayed(response: StoredResponse) -> ApiResult:
    headers = dict(response.headers)
    content_type = headers.pop("Content-Type", "application/json")
    return ApiResult(
        response.status,
        orjson.loads(response.body),
        headers,
        replayed=True,
        content_type=content_type,
    )


def problem_result(problem: Problem) -> ApiResult:
    return ApiResult(
        problem.status,
        problem.body(),
        dict(problem.headers),
        content_type="application/problem+json",
    )


async def run_idempotent(
    store: Store,
    *,
    caller: str,
    idempotency_key: str,
    request_fingerprint: str,
    id_prefix: str,
    lease_ms: int,
    work: Callable[[Run], Awaitable[ApiResult]],
) -> ApiResult:
    scope = scope_of(caller, idempotency_key)
    owner = secrets.token_hex(16)
    claim = await store.claim(scope, request_fingerprint, owner, lease_ms, new_id(id_prefix))
    if isinstance(claim, Replay):
        return _replayed(claim.response)
    if isinstance(claim, Mismatch):
        raise Problem(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request",
        )
    if isinstance(claim, Busy):
        seconds = max(1, -(-claim.retry_after_ms // 1000))
        raise Problem(
            409,
            "idempotency_request_in_flight",
            "a request with this Idempotency-Key is still being processed; retry later",
            headers={"Retry-After": str(min(seconds, 5))},
        )
    assert isinstance(claim, Claimed)
    run = Run(store, scope, owner, claim.record, lease_ms, claim.taken_over)
    heartbeat = asyncio.create_task(_heartbeat(store, scope, owner, lease_ms))
    try:
        try:
            result = await work(run)
        except Problem as problem:
            if problem.retryable and run.record.open_attempt() is None:
                await _release(store, run, problem)
                raise
            result = problem_result(problem)
        if result.final:
            await store.complete(scope, owner, _stored(result), run.deferred)
        else:
            await _release(store, run, None)
        return result
    except LeaseLost as exc:
        raise Problem(
            409,
            "idempotency_lease_lost",
            "another instance took over this request; retry with the same key",
            headers={"Retry-After": "1"},
        ) from exc
    except (Exception, asyncio.CancelledError):
        if not run.wrote_attempt:
            await _release(store, run, None)
        raise
    finally:
        heartbeat.cancel()


async def _heartbeat(store: Store, scope: str, owner: str, lease_ms: int) -> None:
    """Keep a live owner's lease fresh, so the lease can be short: a crashed
    instance's work is taken over within one lease, not one request deadline.
    Missing a beat is safe: a takeover resolves the journal at the same
    acquirer with the same acquirer key, and this owner's next write fails."""
    while True:
        await asyncio.sleep(lease_ms / 3000)
        try:
            if not await store.extend_lease(scope, owner, lease_ms):
                log.warning("lease on %s lost to another owner", scope[:12])
                return
        except StoreUnavailable:
            log.warning("could not renew the lease on %s (store unavailable)", scope[:12])


async def _release(store: Store, run: Run, problem: Problem | None) -> None:
    """Give the claim back; safe only because nothing may be in flight."""
    try:
        await store.release(run.scope, run.owner, run.deferred)
    except Exception:  # the lease will expire on its own
        log.warning("could not release idempotency claim", exc_info=True)
    if problem is not None:
        log.info("released claim after retryable refusal %s", problem.code)
