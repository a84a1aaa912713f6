"""One payment operation end to end: idempotency, journal, acquirer, records.

The failover rule lives in :func:`_attempt` and :func:`_resolve`:

* ``NotProcessed``   -> journaled as such; the caller may try the next acquirer.
* ``OutcomeUnknown`` -> never another acquirer.  Replay at the SAME acquirer
  with the SAME acquirer key (bounded), then ask it for the status; if it still
  cannot say, the payment is ``unknown`` (202) and the reconciler takes over.
* a journaled attempt left open by a dead instance is resolved the same way
  before any other acquirer may be tried.

Responses for payments that are not final yet (pending, unknown) are not
stored under the idempotency key: the lease is released instead, so the
caller's retry resolves the attempt and gets the real answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.base import (
    AcquirerError,
    AcquirerResult,
    FollowOnOrder,
    IntegrationError,
    NotProcessed,
    Operation,
    OutcomeUnknown,
    PaymentOrder,
    ResultStatus,
    StatusQuery,
    sleep_backoff,
)
from router import outcomes
from router.acquirers import Acquirer, invoke
from router.idempotency.flow import ApiResult, Run, derive_acquirer_key, fingerprint, run_idempotent
from router.idempotency.protocol import AlreadyExists
from router.models import CapturePayment, CreatePayment, CreateRefund, PaymentView, RefundView
from router.problems import Problem
from router.records import (
    Attempt,
    AttemptOutcome,
    OpLock,
    PaymentRecord,
    RefundRecord,
    now_ms,
)
from router.routing import RouteInput
from router.runtime import Runtime
from router.states import PaymentState, RefundState, require

log = logging.getLogger(__name__)

_OUTCOME_OF = {
    ResultStatus.APPROVED: AttemptOutcome.APPROVED,
    ResultStatus.DECLINED: AttemptOutcome.DECLINED,
    ResultStatus.PENDING: AttemptOutcome.PENDING,
}
_RESULT_OF = {v: k for k, v in _OUTCOME_OF.items()}

#: a resolution (replays + status query) gets at least this long, deadline or not
RESOLVE_FLOOR_S = 2.0


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._until = self._loop.time() + seconds

    def remaining(self) -> float:
        return self._until - self._loop.time()


# ------------------------------------------------------------------ primitives


def _settled_result(run: Run, operation: str) -> tuple[Attempt, AcquirerResult] | None:
    """A definite answer already in the journal (the previous owner died after
    settling it but before completing the record)."""
    for attempt in reversed(run.record.attempts):
        if attempt.operation == operation and attempt.outcome in _RESULT_OF:
            result = AcquirerResult(
                status=_RESULT_OF[attempt.outcome],
                acquirer_reference=attempt.acquirer_reference,
                decline_code=attempt.reason if attempt.outcome is AttemptOutcome.DECLINED else None,
            )
            return attempt, result
    return None


def _settled(attempt: Attempt, result: AcquirerResult) -> Attempt:
    return attempt.model_copy(
        update={
            "outcome": _OUTCOME_OF[result.status],
            "acquirer_reference": result.acquirer_reference,
            "reason": result.decline_code,
        }
    )


async def _resolve(
    rt: Runtime,
    acquirer: Acquirer,
    send: Callable[[], Awaitable[AcquirerResult]],
    query: StatusQuery,
    deadline: _Deadline,
    replayable: bool = True,
) -> AcquirerResult | None:
    """Find out what an ambiguous request did, asking only the acquirer it went to."""
    for replay in range(rt.config.payments.same_acquirer_replays if replayable else 0):
        await sleep_backoff(replay)
        try:
            return await invoke(acquirer, send, max(deadline.remaining(), RESOLVE_FLOOR_S))
        except IntegrationError:
            break
        except AcquirerError as exc:
            log.info("replay %d at %s did not resolve: %s", replay + 1, acquirer.name, exc.reason)
    try:
        return await invoke(
            acquirer,
            lambda: acquirer.adapter.status(query),
            max(deadline.remaining(), RESOLVE_FLOOR_S),
        )
    except AcquirerError as exc:
        log.info("status query at %s did not resolve: %s", acquirer.name, exc.reason)
        return None


async def _attempt(
    rt: Runtime,
    run: Run,
    acquirer: Acquirer,
    attempt: Attempt,
    send: Callable[[], Awaitable[AcquirerResult]],
    query: StatusQuery,
    deadline: _Deadline,
) -> AcquirerResult | None:
    """Journal ahead, call, settle.  None means the outcome is unknown; a
    NotProcessed or IntegrationError is re-raised after it is journaled."""
    index = await run.journal(attempt)
    try:
        result = await invoke(acquirer, send, deadline.remaining())
    except (NotProcessed, IntegrationError) as exc:
        outcome = (
            AttemptOutcome.NOT_PROCESSED
            if isinstance(exc, NotProcessed)
            else AttemptOutcome.INTEGRATION_ERROR
        )
        rt.metrics.outcomes.labels(acquirer.name, attempt.operation, outcome).inc()
        await run.settle(
            index, attempt.model_copy(update={"outcome": outcome, "reason": exc.reason})
        )
        raise
    except OutcomeUnknown as exc:
        log.warning("outcome unknown at %s (%s): resolving there", acquirer.name, exc.reason)
        resolved = await _resolve(rt, acquirer, send, query, deadline, exc.replayable)
        if resolved is None:
            await run.settle(
                index,
                attempt.model_copy(
                    update={"outcome": AttemptOutcome.UNKNOWN, "reason": exc.reason}
                ),
            )
            rt.metrics.outcomes.labels(acquirer.name, attempt.operation, "unknown").inc()
            return None
        result = resolved
    await run.settle(index, _settled(attempt, result), defer=True)
    rt.metrics.outcomes.labels(acquirer.name, attempt.operation, result.status).inc()
    return result


async def _resume(
    rt: Runtime,
    run: Run,
    send_for: Callable[[Acquirer, str], Callable[[], Awaitable[AcquirerResult]]],
    query_for: Callable[[str], StatusQuery],
    deadline: _Deadline,
) -> tuple[Attempt, AcquirerResult | None] | None:
    """Resolve the journal's open attempt at its own acquirer, if there is one."""
    found = run.record.open_attempt()
    if found is None:
        return None
    index, attempt = found
    acquirer = _acquirer(rt, attempt.acquirer)
    log.info("resolving open attempt at %s left by a previous owner", attempt.acquirer)
    result = await _resolve(
        rt,
        acquirer,
        send_for(acquirer, attempt.acquirer_key),
        query_for(attempt.acquirer_key),
        deadline,
    )
    if result is not None:
        await run.settle(index, _settled(attempt, result))
    elif attempt.outcome is None:
        await run.settle(index, attempt.model_copy(update={"outcome": AttemptOutcome.UNKNOWN}))
    return attempt, result


def _acquirer(rt: Runtime, name: str) -> Acquirer:
    acquirer = rt.acquirers.get(name)
    if acquirer is None:
        raise Problem(
            503,
            "acquirer_not_configured",
            f"acquirer {name!r} holds this payment but is not in the current config",
            retryable=True,
            headers={"Retry-After": "30"},
        )
    return acquirer


def _view(payment: PaymentRecord, status: int) -> ApiResult:
    return ApiResult(
        status,
        PaymentView.of(payment).model_dump(mode="json"),
        {"Location": f"/v1/payments/{payment.id}"},
        final=payment.state not in outcomes.UNRESOLVED and payment.op_lock is None,
    )


async def _owned_payment(rt: Runtime, caller: str, payment_id: str) -> PaymentRecord:
    payment = await rt.store.get_payment(payment_id)
    if payment is None or payment.caller != caller:  # another caller's id is just "not found"
        raise Problem(404, "payment_not_found", f"no payment {payment_id}")
    return payment


async def _schedule_reconcile(rt: Runtime, ref: str) -> None:
    await rt.store.mark_unresolved(ref, now_ms() + int(rt.config.reconciler.first_check_s * 1000))


# ---------------------------------------------------------------------- create


async def create_payment(
    rt: Runtime, caller: str, idempotency_key: str, request: CreatePayment, *, live: bool = False
) -> ApiResult:
    """``caller`` is the tenant (test and live callers are different tenants);
    ``live`` limits routing to live acquirers, else to test-mode ones."""
    body = request.model_dump(mode="json")
    operation = Operation.SALE if request.capture else Operation.AUTHORIZE

    async def work(run: Run) -> ApiResult:
        payment = await _ensure_payment(rt, run, caller, request, live)
        deadline = _Deadline(rt.config.payments.deadline_s)

        def order(key: str) -> PaymentOrder:
            return PaymentOrder(
                payment_id=payment.id,
                amount=request.amount,
                currency=request.currency,
                payment_method=request.payment_method,
                capture=request.capture,
                idempotency_key=key,
                merchant_reference=request.merchant_reference,
                metadata=request.metadata,
            )

        def send_for(acquirer: Acquirer, key: str) -> Callable[[], Awaitable[AcquirerResult]]:
            return lambda: acquirer.adapter.create(order(key))

        def query_for(key: str) -> StatusQuery:
            return StatusQuery(operation, payment.id, key)

        settled = _settled_result(run, operation)
        if settled is not None and run.record.open_attempt() is None:
            done_attempt, done_result = settled
            return await _finish_create(
                rt, payment.id, done_attempt.acquirer, done_attempt.acquirer_key, done_result
            )
        resumed = await _resume(rt, run, send_for, query_for, deadline)
        if resumed is not None:
            open_attempt, outcome = resumed
            if outcome is None:
                return await _finish_unknown(
                    rt, payment.id, open_attempt.acquirer, open_attempt.acquirer_key
                )
            return await _finish_create(
                rt, payment.id, open_attempt.acquirer, open_attempt.acquirer_key, outcome
            )

        # an acquirer that provably processed nothing may be asked again on a retry
        tried = {
            a.acquirer for a in run.record.attempts if a.outcome is not AttemptOutcome.NOT_PROCESSED
        }
        plan = rt.routing.plan(route_input(caller, request, live))
        soft_codes = set(rt.config.routing.soft_decline_codes)
        soft_left = rt.config.routing.max_soft_decline_retries
        soft_declined: tuple[str, str, AcquirerResult] | None = None
        reasons: list[str] = []
        for name in plan.candidates:
            if name in tried:
                continue
            acquirer = rt.acquirers[name]
            key = derive_acquirer_key(caller, idempotency_key, payment.id, name, operation)
            attempt = Attempt(
                acquirer=name, acquirer_key=key, operation=operation, started_ms=now_ms()
            )
            try:
                result = await _attempt(
                    rt, run, acquirer, attempt, send_for(acquirer, key), query_for(key), deadline
                )
            except NotProcessed as exc:
                reasons.append(f"{name}: {exc.reason}")
                rt.metrics.failovers.labels(name, exc.reason).inc()
                log.info("failing over from %s: %s", name, exc.reason)
                continue
            except IntegrationError as exc:
                await rt.update_payment(
                    payment.id, lambda p: outcomes.mark_failed(p, "integration_error")
                )
                raise Problem(
                    502,
                    "acquirer_integration_error",
                    f"acquirer {name} refused our request ({exc.reason}); operators are alerted",
                    payment_id=payment.id,
                ) from exc
            if result is None:
                return await _finish_unknown(rt, payment.id, name, key)
            if (
                result.status is ResultStatus.DECLINED
                and result.decline_code in soft_codes
                and soft_left > 0
            ):
                soft_left -= 1
                soft_declined = (name, key, result)
                reasons.append(f"{name}: soft decline {result.decline_code}")
                rt.metrics.failovers.labels(name, "soft_decline").inc()
                log.info(
                    "soft decline %s at %s: trying the next acquirer", result.decline_code, name
                )
                continue
            return await _finish_create(rt, payment.id, name, key, result, payment)

        if soft_declined is not None:  # nobody else took it: the decline stands
            return await _finish_create(rt, payment.id, *soft_declined)
        await rt.update_payment(
            payment.id, lambda p: outcomes.mark_failed(p, "no_acquirer_available")
        )
        raise Problem(
            503,
            "no_acquirer_available",
            "no acquirer could take the payment; nothing was charged. Retry with the same "
            "Idempotency-Key",
            retryable=True,
            headers={"Retry-After": "2"},
            payment_id=payment.id,
            attempts=reasons,
            routing=plan.notes,
        )

    return await run_idempotent(
        rt.store,
        caller=caller,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint("POST", "/v1/payments", body),
        id_prefix="pay",
        lease_ms=rt.lease_ms,
        work=work,
    )


def route_input(caller: str, request: CreatePayment, live: bool = False) -> RouteInput:
    hints = request.routing
    return RouteInput(
        amount=request.amount,
        currency=request.currency,
        caller=caller,
        payment_method=request.payment_method,
        card_brand=hints.card_brand if hints else None,
        bin=hints.bin if hints else None,
        country=hints.country if hints else None,
        preferred=hints.acquirer if hints else None,
        live=live,
    )


async def _ensure_payment(
    rt: Runtime, run: Run, caller: str, request: CreatePayment, live: bool
) -> PaymentRecord:
    fresh = PaymentRecord(
        id=run.resource_id,
        caller=caller,
        livemode=live,
        state=PaymentState.PENDING,
        amount=request.amount,
        currency=request.currency,
        capture=request.capture,
        payment_method_hint=request.payment_method[:8],
        merchant_reference=request.merchant_reference,
        metadata=request.metadata,
    )
    try:  # the common case first: one round trip, no read
        await rt.store.create_payment(fresh)
    except AlreadyExists:  # a retry after a crash, or a lost reply to our create
        existing = await rt.store.get_payment(run.resource_id)
        assert existing is not None
        payment = existing
    else:
        return fresh
    if payment.state is PaymentState.FAILED:
        payment = await rt.update_payment(payment.id, outcomes.restart)
    return payment


async def _finish_create(
    rt: Runtime,
    payment_id: str,
    acquirer: str,
    key: str,
    result: AcquirerResult,
    known: PaymentRecord | None = None,
) -> ApiResult:
    payment = await rt.update_payment(
        payment_id, lambda p: outcomes.apply_create(p, acquirer, key, result), known
    )
    if payment.state is PaymentState.PENDING:
        await _schedule_reconcile(rt, f"payment:{payment_id}")
        return _view(payment, 202)
    return _view(payment, 201)


async def _finish_unknown(rt: Runtime, payment_id: str, acquirer: str, key: str) -> ApiResult:
    payment = await rt.update_payment(payment_id, lambda p: outcomes.mark_unknown(p, acquirer, key))
    await _schedule_reconcile(rt, f"payment:{payment_id}")
    return _view(payment, 202)


# ----------------------------------------------------------- pinned operations


async def _pinned(
    rt: Runtime,
    run: Run,
    caller: str,
    idempotency_key: str,
    payment: PaymentRecord,
    operation: Operation,
    order_for: Callable[[str], FollowOnOrder],
    send: Callable[[Acquirer, FollowOnOrder], Awaitable[AcquirerResult]],
) -> tuple[str, AcquirerResult | None]:
    """Run a follow-on operation at the acquirer that holds the funds.

    Returns the acquirer key used and the result (None: unknown).  Raises a
    Problem when the acquirer provably did not process it.
    """
    assert payment.acquirer is not None
    acquirer = _acquirer(rt, payment.acquirer)
    deadline = _Deadline(rt.config.payments.deadline_s)

    def send_for(acq: Acquirer, key: str) -> Callable[[], Awaitable[AcquirerResult]]:
        return lambda: send(acq, order_for(key))

    def query_for(key: str) -> StatusQuery:
        order = order_for(key)
        return StatusQuery(operation, payment.id, key, order.acquirer_reference, order.refund_id)

    key = derive_acquirer_key(caller, idempotency_key, run.resource_id, acquirer.name, operation)
    settled = _settled_result(run, operation)
    if settled is not None and run.record.open_attempt() is None:
        return key, settled[1]
    resumed = await _resume(rt, run, send_for, query_for, deadline)
    if resumed is not None:
        return key, resumed[1]
    attempt = Attempt(
        acquirer=acquirer.name, acquirer_key=key, operation=operation, started_ms=now_ms()
    )
    try:
        result = await _attempt(
            rt, run, acquirer, attempt, send_for(acquirer, key), query_for(key), deadline
        )
    except NotProcessed as exc:
        raise Problem(
            503,
            "acquirer_unavailable",
            f"{acquirer.name} holds this payment and did not process the {operation} "
            f"({exc.reason}); retry with the same Idempotency-Key",
            retryable=True,
            headers={"Retry-After": "2"},
        ) from exc
    except IntegrationError as exc:
        raise Problem(
            502,
            "acquirer_integration_error",
            f"acquirer {acquirer.name} refused our {operation} request ({exc.reason})",
        ) from exc
    return key, result


def _follow_on_order(
    payment: PaymentRecord, amount: int, refund_id: str | None = None
) -> Callable[[str], FollowOnOrder]:
    assert payment.acquirer_reference is not None

    def order_for(key: str) -> FollowOnOrder:
        return FollowOnOrder(
            payment_id=payment.id,
            acquirer_reference=payment.acquirer_reference or "",
            amount=amount,
            currency=payment.currency,
            idempotency_key=key,
            refund_id=refund_id,
            merchant_reference=payment.merchant_reference,
        )

    return order_for


async def _locked_operation(
    rt: Runtime,
    caller: str,
    idempotency_key: str,
    payment_id: str,
    operation: Operation,
    amount_of: Callable[[PaymentRecord], int],
    body: dict[str, Any],
) -> ApiResult:
    """Capture and void: both need the payment to themselves while they run."""
    await _owned_payment(rt, caller, payment_id)

    async def work(run: Run) -> ApiResult:
        def take_lock(p: PaymentRecord) -> PaymentRecord | None:
            if p.op_lock is not None and p.op_lock.scope == run.scope:
                return None  # ours already (a retry that took over)
            require(operation, p.state)
            if p.op_lock is not None:
                raise Problem(
                    409,
                    "payment_operation_in_progress",
                    f"a {p.op_lock.operation} is running on this payment; retry later",
                    retryable=True,
                    headers={"Retry-After": "1"},
                )
            p.op_lock = OpLock(operation=operation, scope=run.scope, amount=amount_of(p))
            p.updated_ms = now_ms()
            return p

        if _settled_result(run, operation) is None or run.record.open_attempt() is not None:
            payment = await rt.update_payment(payment_id, take_lock)
        else:  # a previous owner got the answer: only its application may be missing
            payment = await _owned_payment(rt, caller, payment_id)
        lock = payment.op_lock or OpLock(operation=operation, scope=run.scope, amount=0)
        try:
            key, result = await _pinned(
                rt,
                run,
                caller,
                idempotency_key,
                payment,
                operation,
                _follow_on_order(payment, lock.amount),
                (lambda a, o: a.adapter.capture(o))
                if operation is Operation.CAPTURE
                else (lambda a, o: a.adapter.void(o)),
            )
        except Problem:
            await rt.update_payment(payment_id, lambda p: outcomes.unlock(p, run.scope))
            raise
        if result is None:
            payment = await rt.update_payment(
                payment_id,
                lambda p: _note_lock_key(p, run.scope, key),
            )
            await _schedule_reconcile(rt, f"payment:{payment_id}")
            return _view(payment, 202)
        payment = await rt.update_payment(
            payment_id, lambda p: outcomes.apply_locked_operation(p, lock, result)
        )
        if result.status is ResultStatus.DECLINED:
            raise Problem(
                402,
                f"{operation}_declined",
                f"the acquirer declined the {operation}",
                decline_code=result.decline_code,
                payment_id=payment_id,
            )
        return _view(payment, 200 if payment.op_lock is None else 202)

    return await run_idempotent(
        rt.store,
        caller=caller,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint("POST", f"/v1/payments/{payment_id}/{operation}", body),
        id_prefix=operation[:3],
        lease_ms=rt.lease_ms,
        work=work,
    )


def _note_lock_key(p: PaymentRecord, scope: str, key: str) -> PaymentRecord | None:
    """Remember which acquirer key the unresolved operation used (for the reconciler)."""
    if p.op_lock is None or p.op_lock.scope != scope or p.op_lock.acquirer_key == key:
        return None
    p.op_lock = p.op_lock.model_copy(update={"acquirer_key": key})
    return p


async def capture_payment(
    rt: Runtime, caller: str, idempotency_key: str, payment_id: str, request: CapturePayment
) -> ApiResult:
    def amount_of(p: PaymentRecord) -> int:
        amount = request.amount if request.amount is not None else p.amount
        if amount > p.amount:
            raise Problem(
                422,
                "capture_exceeds_authorization",
                f"capture amount {amount} exceeds the authorized {p.amount}",
            )
        return amount

    return await _locked_operation(
        rt,
        caller,
        idempotency_key,
        payment_id,
        Operation.CAPTURE,
        amount_of,
        request.model_dump(mode="json"),
    )


async def void_payment(
    rt: Runtime, caller: str, idempotency_key: str, payment_id: str
) -> ApiResult:
    return await _locked_operation(
        rt, caller, idempotency_key, payment_id, Operation.VOID, lambda p: p.amount, {}
    )


# ---------------------------------------------------------------------- refund


async def refund_payment(
    rt: Runtime, caller: str, idempotency_key: str, payment_id: str, request: CreateRefund
) -> ApiResult:
    await _owned_payment(rt, caller, payment_id)
    body = request.model_dump(mode="json")

    async def work(run: Run) -> ApiResult:
        refund_id = run.resource_id
        payment, refund = await _hold_refund(rt, run, caller, payment_id, request)
        try:
            key, result = await _pinned(
                rt,
                run,
                caller,
                idempotency_key,
                payment,
                Operation.REFUND,
                _follow_on_order(payment, refund.amount, refund_id),
                lambda a, o: a.adapter.refund(o),
            )
        except Problem:
            await drop_refund(rt, payment_id, refund_id)
            raise
        if result is None:
            refund = await rt.update_refund(refund_id, lambda r: _mark_refund_unknown(r, key))
            await _schedule_reconcile(rt, f"refund:{refund_id}")
            return _refund_view(refund, 202)
        refund = await settle_refund(rt, refund_id, result)
        return _refund_view(refund, 202 if refund.state is RefundState.PENDING else 201)

    return await run_idempotent(
        rt.store,
        caller=caller,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint("POST", f"/v1/payments/{payment_id}/refunds", body),
        id_prefix="re",
        lease_ms=rt.lease_ms,
        work=work,
    )


async def _hold_refund(
    rt: Runtime, run: Run, caller: str, payment_id: str, request: CreateRefund
) -> tuple[PaymentRecord, RefundRecord]:
    """Reserve the amount on the payment (atomically) before asking the acquirer,
    so concurrent refunds can never exceed what was captured."""
    refund_id = run.resource_id
    refund = await rt.store.get_refund(refund_id)
    if refund is not None and refund.state is not RefundState.FAILED:
        payment = await rt.store.get_payment(payment_id)
        assert payment is not None
        return payment, refund

    def hold(p: PaymentRecord) -> PaymentRecord | None:
        if refund_id in p.refund_holds:
            return None
        require("refund", p.state)
        available = p.available_to_refund()
        amount = request.amount if request.amount is not None else available
        if amount <= 0 or amount > available:
            raise Problem(
                422,
                "refund_exceeds_available",
                f"refund of {amount} exceeds the {available} still refundable "
                f"(captured {p.captured_amount}, refunded {p.refunded_amount}, "
                f"in progress {p.refund_held})",
                available=available,
            )
        p.refund_holds[refund_id] = amount
        if refund_id not in p.refund_ids:
            p.refund_ids.append(refund_id)
        p.updated_ms = now_ms()
        return p

    payment = await rt.update_payment(payment_id, hold)
    assert payment.acquirer is not None
    amount = payment.refund_holds[refund_id]
    if refund is None:
        refund = RefundRecord(
            id=refund_id,
            payment_id=payment_id,
            caller=caller,
            amount=amount,
            currency=payment.currency,
            state=RefundState.PENDING,
            acquirer=payment.acquirer,
            reason=request.reason,
            merchant_reference=request.merchant_reference,
        )
        with contextlib.suppress(AlreadyExists):
            await rt.store.create_refund(refund)
    else:
        refund = await rt.update_refund(
            refund_id,
            lambda r: r.model_copy(
                update={"state": RefundState.PENDING, "amount": amount, "updated_ms": now_ms()}
            ),
        )
    return payment, refund


async def drop_refund(
    rt: Runtime, payment_id: str, refund_id: str, from_state: RefundState = RefundState.PENDING
) -> None:
    """Nothing was processed: give the amount back and mark the refund failed."""
    await rt.update_payment(
        payment_id,
        lambda p: outcomes.settle_refund_on_payment(p, refund_id, succeeded=False),
    )
    await rt.update_refund(
        refund_id,
        lambda r: (
            r.model_copy(update={"state": RefundState.FAILED, "updated_ms": now_ms()})
            if r.state is from_state
            else None
        ),
    )


def _mark_refund_unknown(r: RefundRecord, key: str) -> RefundRecord | None:
    if r.state is not RefundState.PENDING:
        return None
    r.state, r.acquirer_key, r.updated_ms = RefundState.UNKNOWN, key, now_ms()
    return r


async def settle_refund(rt: Runtime, refund_id: str, result: AcquirerResult) -> RefundRecord:
    """Apply an acquirer's answer to a refund and its payment (any order, any number
    of times)."""
    refund = await rt.update_refund(refund_id, lambda r: outcomes.apply_refund(r, result))
    if refund.state in (RefundState.SUCCEEDED, RefundState.DECLINED):
        await rt.update_payment(
            refund.payment_id,
            lambda p: outcomes.settle_refund_on_payment(
                p, refund_id, succeeded=refund.state is RefundState.SUCCEEDED
            ),
        )
        await rt.store.clear_unresolved(f"refund:{refund_id}")
    return refund


def _refund_view(refund: RefundRecord, status: int) -> ApiResult:
    return ApiResult(
        status,
        RefundView.of(refund).model_dump(mode="json"),
        {"Location": f"/v1/refunds/{refund.id}"},
        final=refund.state not in (RefundState.PENDING, RefundState.UNKNOWN),
    )


# ------------------------------------------------------------------------ reads


async def get_payment(rt: Runtime, caller: str, payment_id: str) -> PaymentView:
    return PaymentView.of(await _owned_payment(rt, caller, payment_id))


async def get_refund(rt: Runtime, caller: str, refund_id: str) -> RefundView:
    refund = await rt.store.get_refund(refund_id)
    if refund is None or refund.caller != caller:
        raise Problem(404, "refund_not_found", f"no refund {refund_id}")
    return RefundView.of(refund)
