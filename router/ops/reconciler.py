"""Background resolution of payments, operations and refunds whose outcome is open.

Unresolved records sit in their shard's reconciliation index with a due
time.  Each pass takes what is due (holding it, so one instance at a time
works on an item), asks the acquirer that holds it by the acquirer key the
attempt used, and applies a definite answer through the same idempotent
functions as the live path.  Otherwise the item comes back later: the older
the attempt, the longer the wait (half its age, capped).  A payment still
waiting for the shopper past ``reconciler.pending_expiry_s`` is given up at
acquirers that can cancel it (its answer is then declined, or approved if
the shopper finished meanwhile); at others it waits for their webhook.

"No record of that key" settles an item as not processed only from an
acquirer whose lookup is authoritative, and only once the attempt is older
than the grace period, when nothing sent then can still be on its way.

The fleet shares the sweep instead of every worker sweeping every shard
(64 scripts a pass each: a fifth of a Redis server for 100 idle workers).
Each pass first notes its worker among the reconcilers and reads the ones
that passed within ``ALIVE_PASSES`` intervals; each shard is swept by the
member that ranks highest for it (rendezvous hashing), so a member joining
or leaving moves only its own share.  Views that disagree for a moment only
make two members sweep a shard (harmless: ``due`` holds what it hands out);
a worker that stops passing (stopped, killed, stuck) leaves everyone's view
once its last pass is ``ALIVE_PASSES`` intervals old, and its shards pass to
the next in rank.  Its items wait that long at most, which the reconciler's
backoff (half an attempt's age) already exceeds for anything not brand new.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from adapters.base import AcquirerResult, ResultStatus, StatusQuery
from adapters.errors import AcquirerError
from router.payments import outcomes
from router.payments.journal import Draft, payment_draft, unresolved
from router.payments.records import (
    Attempt,
    AttemptOutcome,
    PaymentRecord,
    Record,
    RefundRecord,
    Source,
    now_ms,
)
from router.payments.states import PaymentState
from router.routing.acquirers import invoke
from router.runtime import Runtime
from router.store.keys import ALL_SHARDS, SHARDS, DocKind, shard_of
from router.store.protocol import Commit, StoreUnavailable

log = logging.getLogger(__name__)

S = PaymentState
NOT_RECEIVED = "acquirer_confirms_not_processed"
#: a reconciler whose last pass is older than this many intervals is taken
#: for gone, and its shards are swept by the others
ALIVE_PASSES = 3


class _Unreachable(Exception):
    pass


async def _ask(
    rt: Runtime, attempt: Attempt, query: StatusQuery, *, abandon: bool = False
) -> AcquirerResult | None:
    """The acquirer's record of the operation, None if it has none (with
    ``abandon``: after giving the waiting create up there); raises
    _Unreachable when the acquirer could not be asked."""
    acquirer = rt.acquirers.get(attempt.acquirer)
    if acquirer is None:
        raise _Unreachable(attempt.acquirer)
    timeouts = acquirer.adapter.timeouts
    method = acquirer.adapter.abandon if abandon else acquirer.adapter.status
    try:
        return await invoke(
            acquirer,
            functools.partial(method, query),
            timeouts.connect_s + timeouts.read_s,
        )
    except AcquirerError as exc:
        log.info("reconcile status query at %s failed: %s", attempt.acquirer, exc.reason)
        raise _Unreachable(attempt.acquirer) from exc


def _proven_absent(rt: Runtime, attempt: Attempt) -> bool:
    """'No record' is proof only from an authoritative acquirer, and only once
    nothing sent when the attempt started can still be on its way there."""
    acquirer = rt.acquirers.get(attempt.acquirer)
    grace_ms = rt.config.reconciler.not_found_grace_s * 1000
    return (
        acquirer is not None
        and acquirer.adapter.status_is_authoritative
        and now_ms() - attempt.started_ms >= grace_ms
    )


def _create_attempt(payment: PaymentRecord) -> tuple[int, Attempt] | None:
    """The create attempt the payment waits on (open, or answered 'pending')."""
    found = payment.open_attempt()
    if found is not None:
        return found
    if payment.attempts and payment.state in (S.PENDING, S.CAPTURE_PENDING):
        index = len(payment.attempts) - 1
        return index, payment.attempts[index]
    return None


async def _resolve_create(rt: Runtime, draft: Draft, payment: PaymentRecord) -> None:
    found = _create_attempt(payment)
    if found is None:
        return
    index, attempt = found
    operation = attempt.operation
    query = StatusQuery(operation, payment.id, attempt.acquirer_key, payment.acquirer_reference)
    result = await _ask(rt, attempt, query)
    if _expired(rt, payment, attempt, result):  # the shopper never came back
        result = await _ask(rt, attempt, query, abandon=True) or result
    if result is None:
        if attempt.open and _proven_absent(rt, attempt):
            draft.apply(functools.partial(outcomes.confirm_not_processed, reason=NOT_RECEIVED))
        return
    if payment.state is S.CAPTURE_PENDING:
        draft.apply(functools.partial(outcomes.apply_sale_capture, result=result))
    else:
        draft.apply(functools.partial(outcomes.apply_create, index=index, result=result))


def _expired(
    rt: Runtime, payment: PaymentRecord, attempt: Attempt, result: AcquirerResult | None
) -> bool:
    """Still waiting for the shopper, long past the window for it."""
    waiting = result is not None and result.status is ResultStatus.PENDING
    age_ms = now_ms() - attempt.started_ms
    return (
        waiting
        and payment.state is S.PENDING
        and age_ms >= rt.config.reconciler.pending_expiry_s * 1000
    )


async def _resolve_operation(rt: Runtime, draft: Draft, payment: PaymentRecord) -> None:
    op = payment.open_operation()
    if op is None:
        return
    query = StatusQuery(
        op.operation, payment.id, op.attempt.acquirer_key, payment.acquirer_reference
    )
    result = await _ask(rt, op.attempt, query)
    if result is not None and result.status is not ResultStatus.PENDING:
        draft.apply(functools.partial(outcomes.apply_operation, op_id=op.id, result=result))
    elif result is None and op.attempt.open and _proven_absent(rt, op.attempt):
        draft.apply(
            functools.partial(
                outcomes.fail_operation,
                op_id=op.id,
                outcome=AttemptOutcome.NOT_PROCESSED,
                reason=NOT_RECEIVED,
            )
        )


async def resolve_payment(rt: Runtime, payment_id: str) -> Record | None:
    payment = await rt.store.get_payment(payment_id)
    if payment is None:
        return None
    draft = payment_draft(rt, payment)
    if payment.open_operation() is not None:
        await _resolve_operation(rt, draft, payment)
    else:
        await _resolve_create(rt, draft, payment)
    await draft.commit(Source.RECONCILER)
    return draft.records[0]


async def resolve_refund(rt: Runtime, refund_id: str) -> Record | None:
    refund = await rt.store.get_refund(refund_id)
    if refund is None:
        return None
    payment = await rt.store.get_payment(refund.payment_id)
    attempt = refund.attempt
    if payment is None or attempt is None or not refund.unresolved:
        return refund

    async def reread() -> list[RefundRecord | PaymentRecord | None]:
        return [await rt.store.get_refund(refund_id), await rt.store.get_payment(payment.id)]

    draft = Draft(rt, [refund, payment], reread)
    query = StatusQuery(
        attempt.operation,
        refund.payment_id,
        attempt.acquirer_key,
        payment.acquirer_reference,
        refund.id,
    )
    result = await _ask(rt, attempt, query)
    if result is not None and result.status is not ResultStatus.PENDING:
        draft.apply(functools.partial(outcomes.apply_refund, result=result))
    elif result is None and attempt.open and _proven_absent(rt, attempt):
        draft.apply(
            functools.partial(
                outcomes.fail_refund, outcome=AttemptOutcome.NOT_PROCESSED, reason=NOT_RECEIVED
            )
        )
    await draft.commit(Source.RECONCILER)
    return draft.records[0]


def _next_check(rt: Runtime, record: Record) -> int:
    """Back off by half the age of what we wait for, within the configured bounds."""
    cfg = rt.config.reconciler
    started = record.created_ms
    if isinstance(record, PaymentRecord):
        op = record.open_operation()
        started = (
            op.attempt.started_ms
            if op
            else (record.attempts[-1].started_ms if record.attempts else started)
        )
    elif record.attempt is not None:
        started = record.attempt.started_ms
    age_s = max(0.0, (now_ms() - started) / 1000)
    delay = min(cfg.max_backoff_s, max(cfg.interval_s, age_s / 2))
    return now_ms() + int(delay * 1000)


def _rank(shard: int, member: str) -> tuple[bytes, str]:
    """Ties (all but impossible) go the same way in every process."""
    return hashlib.blake2b(f"{shard}:{member}".encode(), digest_size=8).digest(), member


@functools.lru_cache(maxsize=8)  # the view seldom changes between passes
def _shares(member: str, everyone: frozenset[str]) -> tuple[int, ...]:
    return tuple(
        shard
        for shard in range(SHARDS)
        if max(everyone, key=functools.partial(_rank, shard)) == member
    )


def shards_of(member: str, members: Sequence[str]) -> tuple[int, ...]:
    """The shards ``member`` sweeps among ``members`` (rendezvous hashing:
    each shard goes to the member ranking highest for it)."""
    return _shares(member, frozenset(members) | {member})


@dataclass
class Share:
    """The shards this member sweeps, as its reconciler last saw the fleet;
    the outbox trim (router.ops.maintenance) follows it.  Every shard until
    the first pass, and the last view while the store cannot give a new one:
    a shard swept twice costs a few commands, a shard nobody sweeps grows."""

    shards: tuple[int, ...] = ALL_SHARDS


async def my_shards(rt: Runtime, member: str) -> tuple[int, ...]:
    """Note this pass, and the shards that are this member's to sweep now."""
    alive_ms = int(ALIVE_PASSES * rt.config.reconciler.interval_s * 1000)
    members = await rt.store.reconcilers(member, now_ms(), alive_ms)
    shards = shards_of(member, members)
    rt.metrics.reconciler_shards.set(len(shards))
    return shards


async def reconcile_once(rt: Runtime, limit: int = 100, shards: Iterable[int] = ALL_SHARDS) -> int:
    """One pass over what is due in ``shards``; returns how many items were resolved."""
    resolved = seen = 0
    hold_ms = int(max(rt.config.reconciler.interval_s * 4, 30) * 1000)
    for shard in shards:
        for ref in await rt.store.due(shard, now_ms(), hold_ms, limit):
            seen += 1
            resolved += await _reconcile(rt, ref)
    rt.metrics.reconciler_open.set(seen - resolved)
    return resolved


async def _reconcile(rt: Runtime, ref: str) -> bool:
    kind, _, ident = ref.partition(":")
    try:
        record = await (
            resolve_payment(rt, ident) if kind == DocKind.PAYMENT else resolve_refund(rt, ident)
        )
    except _Unreachable:
        record = (
            await rt.store.get_payment(ident)
            if kind == DocKind.PAYMENT
            else await rt.store.get_refund(ident)
        )
    shard = shard_of(ident)
    if record is None or not unresolved(record):
        rt.metrics.reconciled.labels(kind).inc()
        await rt.store.commit(Commit(shard=shard, reconcile=((ref, None),), durable=False))
        return True
    await rt.store.commit(
        Commit(shard=shard, reconcile=((ref, _next_check(rt, record)),), durable=False)
    )
    return False


async def reconciler_loop(current: Callable[[], Runtime], member: str, share: Share) -> None:
    while True:
        rt = current()
        await asyncio.sleep(rt.config.reconciler.interval_s)
        try:
            share.shards = await my_shards(rt, member)
            count = await reconcile_once(rt, shards=share.shards)
            if count:
                log.info("reconciler resolved %d item(s)", count)
        except StoreUnavailable:
            log.warning("reconciler: store unavailable, will retry")
        except Exception:
            log.exception("reconciler pass failed")
