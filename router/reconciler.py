"""Background resolution of payments and refunds whose outcome is not known.

Unknown and pending items sit in the store's unresolved index with a due
time.  Each pass asks the acquirer that holds the item (status query by the
acquirer key the attempt used), applies a definite answer through the same
idempotent functions as the live path, and backs off exponentially otherwise.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from adapters.base import AcquirerError, AcquirerResult, Operation, ResultStatus, StatusQuery
from router import outcomes
from router.acquirers import invoke
from router.background import background_ctx
from router.idempotency.protocol import StoreUnavailable
from router.keys import RUNTIME
from router.orchestrator import drop_refund, settle_refund
from router.records import now_ms
from router.runtime import Runtime
from router.states import PaymentState, RefundState

log = logging.getLogger(__name__)

_tries: dict[str, int] = {}


class _Unreachable(Exception):
    pass


async def _ask(rt: Runtime, acquirer_name: str, query: StatusQuery) -> AcquirerResult | None:
    """The acquirer's record of the operation, None if it has none; raises
    _Unreachable when the acquirer could not be asked."""
    acquirer = rt.acquirers.get(acquirer_name)
    if acquirer is None:
        raise _Unreachable(acquirer_name)
    try:
        return await invoke(
            acquirer,
            lambda: acquirer.adapter.status(query),
            acquirer.adapter.timeouts.connect + acquirer.adapter.timeouts.read,
        )
    except AcquirerError as exc:
        log.info("reconcile status query at %s failed: %s", acquirer_name, exc.reason)
        raise _Unreachable(acquirer_name) from exc


def _proven_absent(rt: Runtime, acquirer_name: str | None, since_ms: int) -> bool:
    """'No record' is proof only from an authoritative acquirer, and only once
    nothing sent at ``since_ms`` can still be on its way there."""
    acquirer = rt.acquirers.get(acquirer_name) if acquirer_name else None
    grace_ms = rt.config.reconciler.not_found_grace_s * 1000
    return (
        acquirer is not None
        and acquirer.adapter.status_is_authoritative
        and now_ms() - since_ms >= grace_ms
    )


async def resolve_payment(rt: Runtime, payment_id: str) -> bool:
    """True when nothing about the payment is open any more."""
    p = await rt.store.get_payment(payment_id)
    if p is None:
        return True
    if p.state in outcomes.UNRESOLVED and p.acquirer and p.acquirer_key:
        operation = Operation.SALE if p.capture else Operation.AUTHORIZE
        result = await _ask(
            rt, p.acquirer, StatusQuery(operation, p.id, p.acquirer_key, p.acquirer_reference)
        )
        if result is not None:
            acquirer, key, answer = p.acquirer, p.acquirer_key, result
            p = await rt.update_payment(
                p.id, lambda cur: outcomes.apply_create(cur, acquirer, key, answer)
            )
        elif _proven_absent(rt, p.acquirer, p.updated_ms):
            p = await rt.update_payment(p.id, outcomes.confirm_not_processed)
        return p.state not in outcomes.UNRESOLVED and p.op_lock is None
    if p.op_lock is not None and p.acquirer and p.op_lock.acquirer_key:
        lock = p.op_lock
        assert lock.acquirer_key is not None
        result = await _ask(
            rt,
            p.acquirer,
            StatusQuery(Operation(lock.operation), p.id, lock.acquirer_key, p.acquirer_reference),
        )
        if result is not None and result.status is not ResultStatus.PENDING:
            answer = result
            p = await rt.update_payment(
                p.id, lambda cur: outcomes.apply_locked_operation(cur, lock, answer)
            )
        elif result is None and _proven_absent(rt, p.acquirer, p.updated_ms):
            p = await rt.update_payment(p.id, lambda cur: outcomes.unlock(cur, lock.scope))
        return p.op_lock is None
    return p.state is not PaymentState.UNKNOWN


async def resolve_refund(rt: Runtime, refund_id: str) -> bool:
    refund = await rt.store.get_refund(refund_id)
    if refund is None:
        return True
    if refund.state not in (RefundState.PENDING, RefundState.UNKNOWN) or not refund.acquirer_key:
        return refund.state not in (RefundState.PENDING, RefundState.UNKNOWN)
    payment = await rt.store.get_payment(refund.payment_id)
    result = await _ask(
        rt,
        refund.acquirer,
        StatusQuery(
            Operation.REFUND,
            refund.payment_id,
            refund.acquirer_key,
            payment.acquirer_reference if payment else None,
            refund.id,
        ),
    )
    if result is None:
        if refund.state is RefundState.UNKNOWN and _proven_absent(
            rt, refund.acquirer, refund.updated_ms
        ):
            await drop_refund(rt, refund.payment_id, refund.id, RefundState.UNKNOWN)
            return True
        return False
    if result.status is ResultStatus.PENDING:
        return False
    refund = await settle_refund(rt, refund_id, result)
    return refund.state not in (RefundState.PENDING, RefundState.UNKNOWN)


async def reconcile_once(rt: Runtime, limit: int = 100) -> int:
    """One pass over what is due; returns how many items were resolved."""
    resolved = 0
    for ref in await rt.store.due_unresolved(now_ms(), limit):
        kind, _, ident = ref.partition(":")
        try:
            done = await (
                resolve_payment(rt, ident) if kind == "payment" else resolve_refund(rt, ident)
            )
        except _Unreachable:
            done = False
        if done:
            resolved += 1
            rt.metrics.reconciled.labels(kind).inc()
            _tries.pop(ref, None)
            await rt.store.clear_unresolved(ref)
            continue
        tries = _tries[ref] = _tries.get(ref, 0) + 1
        cfg = rt.config.reconciler
        delay = min(cfg.max_backoff_s, max(cfg.interval_s, cfg.first_check_s) * 2**tries)
        await rt.store.mark_unresolved(ref, now_ms() + int(delay * 1000))
    return resolved


async def _loop(app: web.Application) -> None:
    while True:
        rt = app[RUNTIME].current
        await asyncio.sleep(rt.config.reconciler.interval_s)
        try:
            count = await reconcile_once(rt)
            if count:
                log.info("reconciler resolved %d item(s)", count)
        except StoreUnavailable:
            log.warning("reconciler: store unavailable, will retry")
        except Exception:
            log.exception("reconciler pass failed")


reconciler_ctx = background_ctx("reconciler", _loop)
