"""Captures and voids: operations pinned to the acquirer that holds the funds.

An operation is journaled *inside* the payment (``payment.operations``),
under the id its idempotency key derives, before anything is sent: that
record is at once the write-ahead attempt and the lock that keeps a capture
and a void from ever running together.  The answer is derived from it, so a
retry of a capture that succeeded -- settled by the live call, a webhook or
the reconciler -- answers 200, never "capture not allowed".
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable

from adapters.base import AcquirerResult, Adapter, FollowOnOrder, Operation, StatusQuery
from adapters.errors import IntegrationError, NotProcessed
from adapters.values import frozen
from router.payments import outcomes
from router.payments.answers import operation_answer
from router.payments.claims import Run, claim, held, settle
from router.payments.context import ApiResult, Call
from router.payments.journal import Draft, payment_draft
from router.payments.reads import owned_payment
from router.payments.records import (
    Attempt,
    AttemptOutcome,
    OperationRecord,
    PaymentRecord,
    Source,
    now_ms,
)
from router.payments.resolution import acquirer_of, call_acquirer, resolve
from router.payments.states import OperationState, require
from router.payments.steps import Step, When
from router.problems import Problem
from router.store.ids import Ids
from router.store.keys import DocKind, shard_of
from router.store.protocol import Claimed, ClaimRequest

#: id prefix of each operation's records
ID_PREFIX = {Operation.CAPTURE: "cap", Operation.VOID: "void", Operation.REFUND: "re"}


@frozen
class FollowOnIntent:
    """A capture, void or refund of a payment the acquirer already knows."""

    operation: Operation
    base: FollowOnOrder

    def order(self, key: str) -> FollowOnOrder:
        return dataclasses.replace(self.base, idempotency_key=key)

    def send(self, adapter: Adapter, key: str) -> Awaitable[AcquirerResult]:
        if self.operation is Operation.CAPTURE:
            return adapter.capture(self.order(key))
        if self.operation is Operation.VOID:
            return adapter.void(self.order(key))
        return adapter.refund(self.order(key))

    def query(self, key: str, reference: str | None) -> StatusQuery:
        base = self.base
        return StatusQuery(
            self.operation, base.payment_id, key, base.acquirer_reference, base.refund_id
        )


def intent_for(
    payment: PaymentRecord,
    operation: Operation,
    amount: int,
    refund_id: str | None = None,
    reason: str | None = None,
    merchant_reference: str | None = None,
) -> FollowOnIntent:
    assert payment.acquirer_reference is not None, "an answered payment has its reference"
    return FollowOnIntent(
        operation,
        FollowOnOrder(
            payment_id=payment.id,
            acquirer_reference=payment.acquirer_reference,
            amount=amount,
            currency=payment.currency,
            idempotency_key="",
            refund_id=refund_id,
            merchant_reference=merchant_reference or payment.merchant_reference,
            reason=reason,
        ),
    )


def claim_request(
    call: Call, operation: Operation, payment_id: str, body: dict[str, object], extra_reads: int = 0
) -> ClaimRequest:
    """The claim of a follow-on: scoped to the payment, in the payment's shard."""
    rt = call.rt
    scope = Ids.scope(call.tenant, call.idempotency_key, payment_id)
    resource_id = rt.ids.child_id(
        ID_PREFIX[operation], call.tenant, call.idempotency_key, payment_id, rt.ids.epoch(now_ms())
    )
    reads: tuple[tuple[DocKind, str], ...] = ((DocKind.PAYMENT, payment_id),)
    if extra_reads:
        reads += ((DocKind.REFUND, resource_id),)
    path = f"/v1/payments/{payment_id}/{'refunds' if operation is Operation.REFUND else operation}"
    return ClaimRequest(
        scope=scope,
        shard=shard_of(payment_id),
        fingerprint=rt.ids.fingerprint("POST", path, body),
        owner=call.owner,
        lease_ms=rt.lease_ms,
        resource_id=resource_id,
        read=reads,
        durable=False,  # nothing was written ahead yet: the lock commit is durable
    )


async def capture_payment(call: Call, payment_id: str, amount: int | None) -> ApiResult:
    return await _follow_on(call, payment_id, Operation.CAPTURE, amount, {"amount": amount})


async def void_payment(call: Call, payment_id: str) -> ApiResult:
    return await _follow_on(call, payment_id, Operation.VOID, None, {})


async def _follow_on(
    call: Call,
    payment_id: str,
    operation: Operation,
    amount: int | None,
    body: dict[str, object],
) -> ApiResult:
    request = claim_request(call, operation, payment_id, body)
    claimed = await claim(call, operation, request)
    if not isinstance(claimed, Claimed):
        return claimed
    run = Run(call, request.scope, request.shard, claimed.resource_id)
    return await held(run, functools.partial(_run, run, operation, payment_id, amount, claimed))


async def _run(
    run: Run, operation: Operation, payment_id: str, amount: int | None, claimed: Claimed
) -> ApiResult:
    call = run.call
    payment = await owned_payment(call, payment_id, claimed.records.get(payment_id))
    draft = payment_draft(call.rt, payment)
    op = payment.operation(run.resource_id)
    if op is not None and op.state is not OperationState.FAILED:
        if op.attempt.open:
            return await _resume(run, draft, op)
        return await _answer(run, draft, Source.REPLAY)
    draft.apply(functools.partial(_start, run=run, operation=operation, amount=amount))
    rt = call.rt
    rt.hooks.at(operation, Step.JOURNAL, When.BEFORE)
    await draft.commit(call.source, lease=run.keeping)
    rt.hooks.at(operation, Step.JOURNAL, When.AFTER)
    op = _op(draft, run.resource_id)
    acquirer = acquirer_of(call, op.attempt.acquirer)
    intent = intent_for(_payment(draft), operation, op.amount)
    try:
        result = await call_acquirer(call, acquirer, intent, op.attempt.acquirer_key)
    except NotProcessed as exc:
        draft.apply(
            functools.partial(
                outcomes.fail_operation,
                op_id=op.id,
                outcome=AttemptOutcome.NOT_PROCESSED,
                reason=exc.reason,
            )
        )
        return await _answer(run, draft, call.source, after_call=True)
    except IntegrationError as exc:
        draft.apply(
            functools.partial(
                outcomes.fail_operation,
                op_id=op.id,
                outcome=AttemptOutcome.INTEGRATION_ERROR,
                reason=exc.reason,
            )
        )
        return await _answer(run, draft, call.source, after_call=True)
    return await _settle(run, draft, op.id, result, call.source)


def _start(payment: PaymentRecord, *, run: Run, operation: Operation, amount: int | None) -> bool:
    """Check and journal the operation; replayed on a fresher payment after a race."""
    existing = payment.operation(run.resource_id)
    if existing is not None and existing.state is not OperationState.FAILED:
        return False  # ours, written before a lost reply
    require(operation, payment.state)
    held_by = payment.open_operation()
    if held_by is not None:
        raise Problem(
            409,
            "payment_operation_in_progress",
            f"a {held_by.operation} is running on this payment; retry later",
            retryable=True,
            headers={"Retry-After": "1"},
        )
    value = payment.amount if amount is None else amount
    if operation is Operation.CAPTURE and value > payment.amount:
        raise Problem(
            422,
            "capture_exceeds_authorization",
            f"capture amount {value} exceeds the authorized {payment.amount}",
        )
    assert payment.acquirer is not None
    call = run.call
    key = call.rt.ids.acquirer_key(run.resource_id, operation, payment.acquirer)
    attempt = Attempt(
        acquirer=payment.acquirer, acquirer_key=key, operation=operation, started_ms=now_ms()
    )
    if existing is not None:  # a retry of one that provably never ran
        payment.operations.remove(existing)
    record = OperationRecord(
        id=run.resource_id,
        operation=operation,
        amount=value,
        state=OperationState.PENDING,
        attempt=attempt,
    )
    return outcomes.open_operation(payment, record)


async def _resume(run: Run, draft: Draft, op: OperationRecord) -> ApiResult:
    call = run.call
    acquirer = acquirer_of(call, op.attempt.acquirer)
    intent = intent_for(_payment(draft), op.operation, op.amount)
    result = await resolve(
        call, acquirer, intent, op.attempt.acquirer_key, op.attempt.acquirer_reference
    )
    return await _settle(run, draft, op.id, result, Source.REPLAY)


async def _settle(
    run: Run, draft: Draft, op_id: str, result: AcquirerResult | None, source: Source
) -> ApiResult:
    if result is None:
        draft.apply(
            functools.partial(
                outcomes.mark_operation_unknown, op_id=op_id, reason="outcome_unknown"
            )
        )
    else:
        draft.apply(functools.partial(outcomes.apply_operation, op_id=op_id, result=result))
    return await _answer(run, draft, source, after_call=True)


def _answer_for(op_id: str, payment: PaymentRecord) -> ApiResult:
    op = payment.operation(op_id)
    assert op is not None
    return operation_answer(payment, op)


async def _answer(run: Run, draft: Draft, source: Source, *, after_call: bool = False) -> ApiResult:
    operation = _op(draft, run.resource_id).operation
    answer = functools.partial(_answer_for, run.resource_id)
    return await settle(
        run, draft, source, operation, answer, after_call=after_call, payment_id=_payment(draft).id
    )


def _payment(draft: Draft) -> PaymentRecord:
    payment = draft.records[0]
    assert isinstance(payment, PaymentRecord)
    return payment


def _op(draft: Draft, op_id: str) -> OperationRecord:
    op = _payment(draft).operation(op_id)
    assert op is not None
    return op
