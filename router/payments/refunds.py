"""Refunds: reserve the amount on the payment, journal, call, settle.

The refund record and the reservation on its payment are written together,
ahead of the call, so concurrent refunds can never exceed what was captured
and a refund whose answer was lost is resolved at its acquirer with its key.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from adapters.base import AcquirerResult, Operation
from adapters.errors import IntegrationError, NotProcessed
from router.payments import outcomes
from router.payments.answers import refund_answer
from router.payments.claims import Run, claim, held, settle
from router.payments.context import ApiResult, Call
from router.payments.follow_on import claim_request, intent_for
from router.payments.journal import Draft
from router.payments.models import CreateRefund
from router.payments.reads import owned_payment
from router.payments.records import (
    Attempt,
    AttemptOutcome,
    PaymentRecord,
    Record,
    RefundRecord,
    Source,
    now_ms,
)
from router.payments.resolution import acquirer_of, call_acquirer, resolve
from router.payments.states import OperationState, require
from router.payments.steps import Step, When
from router.problems import Problem
from router.store.protocol import Claimed

OP = Operation.REFUND


async def refund_payment(call: Call, payment_id: str, request: CreateRefund) -> ApiResult:
    claim_req = claim_request(call, OP, payment_id, request.model_dump(mode="json"), extra_reads=1)
    claimed = await claim(call, OP, claim_req)
    if not isinstance(claimed, Claimed):
        return claimed
    run = Run(call, claim_req.scope, claim_req.shard, claimed.resource_id)
    return await held(run, functools.partial(_run, run, payment_id, request, claimed))


def _draft(run: Run, refund: RefundRecord, payment: PaymentRecord) -> Draft:
    store = run.call.rt.store

    async def reread() -> Sequence[Record | None]:
        again = await store.get_refund(refund.id)
        return [
            again or _new_refund(run, payment, refund.reason, refund.merchant_reference),
            await store.get_payment(payment.id),
        ]

    return Draft(run.call.rt, [refund, payment], reread)


def _new_refund(
    run: Run, payment: PaymentRecord, reason: str | None, merchant_reference: str | None
) -> RefundRecord:
    assert payment.acquirer is not None
    return RefundRecord(
        id=run.resource_id,
        payment_id=payment.id,
        tenant=payment.tenant,
        livemode=payment.livemode,
        amount=0,
        currency=payment.currency,
        state=OperationState.PENDING,
        acquirer=payment.acquirer,
        reason=reason,
        merchant_reference=merchant_reference,
    )


async def _run(run: Run, payment_id: str, request: CreateRefund, claimed: Claimed) -> ApiResult:
    call = run.call
    payment = await owned_payment(call, payment_id, claimed.records.get(payment_id))
    known = claimed.records.get(run.resource_id)
    refund = known if isinstance(known, RefundRecord) else None
    if refund is not None and refund.state is not OperationState.FAILED:
        draft = _draft(run, refund, payment)
        if refund.attempt is not None and refund.attempt.open:
            return await _resume(run, draft, refund)
        return await _answer(run, draft, Source.REPLAY)
    fresh = refund or _new_refund(run, payment, request.reason, request.merchant_reference)
    draft = _draft(run, fresh, payment)
    draft.apply(functools.partial(_start, run=run, amount=request.amount))
    rt = call.rt
    rt.hooks.at(OP, Step.JOURNAL, When.BEFORE)
    await draft.commit(call.source, lease=run.keeping)
    rt.hooks.at(OP, Step.JOURNAL, When.AFTER)
    refund, payment = _records(draft)
    assert refund.attempt is not None
    acquirer = acquirer_of(call, refund.acquirer)
    intent = intent_for(
        payment, OP, refund.amount, refund.id, refund.reason, refund.merchant_reference
    )
    try:
        result = await call_acquirer(call, acquirer, intent, refund.attempt.acquirer_key)
    except (NotProcessed, IntegrationError) as exc:
        outcome = (
            AttemptOutcome.NOT_PROCESSED
            if isinstance(exc, NotProcessed)
            else AttemptOutcome.INTEGRATION_ERROR
        )
        draft.apply(functools.partial(outcomes.fail_refund, outcome=outcome, reason=exc.reason))
        return await _answer(run, draft, call.source, after_call=True)
    return await _settle(run, draft, result, call.source)


def _start(refund: RefundRecord, payment: PaymentRecord, *, run: Run, amount: int | None) -> bool:
    """Check, reserve and journal; replayed on fresher records after a race."""
    if refund.state is not OperationState.FAILED and refund.attempt is not None:
        return False  # ours, written before a lost reply
    require(OP, payment.state)
    available = payment.available_to_refund()
    value = available if amount is None else amount
    if value <= 0 or value > available:
        raise Problem(
            422,
            "refund_exceeds_available",
            f"refund of {value} exceeds the {available} still refundable "
            f"(captured {payment.captured_amount}, refunded {payment.refunded_amount}, "
            f"in progress {payment.refund_held})",
            available=available,
        )
    key = run.call.rt.ids.acquirer_key(refund.id, OP, refund.acquirer)
    attempt = Attempt(acquirer=refund.acquirer, acquirer_key=key, operation=OP, started_ms=now_ms())
    if refund.state is OperationState.FAILED:
        refund.amount = value
        return outcomes.restart_refund(refund, payment, attempt)
    refund.amount, refund.attempt = value, attempt
    return outcomes.hold_refund(payment, refund.id, value)


async def _resume(run: Run, draft: Draft, refund: RefundRecord) -> ApiResult:
    call = run.call
    assert refund.attempt is not None
    _, payment = _records(draft)
    acquirer = acquirer_of(call, refund.acquirer)
    intent = intent_for(
        payment, OP, refund.amount, refund.id, refund.reason, refund.merchant_reference
    )
    result = await resolve(
        call, acquirer, intent, refund.attempt.acquirer_key, refund.attempt.acquirer_reference
    )
    return await _settle(run, draft, result, Source.REPLAY)


async def _settle(
    run: Run, draft: Draft, result: AcquirerResult | None, source: Source
) -> ApiResult:
    if result is None:
        draft.apply(_unknown)
    else:
        draft.apply(functools.partial(outcomes.apply_refund, result=result))
    return await _answer(run, draft, source, after_call=True)


def _unknown(refund: RefundRecord, _payment: PaymentRecord) -> bool:
    return outcomes.mark_refund_unknown(refund, "outcome_unknown")


def _answer_of(refund: RefundRecord, _payment: PaymentRecord) -> ApiResult:
    return refund_answer(refund)


async def _answer(run: Run, draft: Draft, source: Source, *, after_call: bool = False) -> ApiResult:
    return await settle(
        run, draft, source, OP, _answer_of, after_call=after_call, refund_id=run.resource_id
    )


def _records(draft: Draft) -> tuple[RefundRecord, PaymentRecord]:
    refund, payment = draft.records
    assert isinstance(refund, RefundRecord)
    assert isinstance(payment, PaymentRecord)
    return refund, payment
