"""Creating a payment (authorize or sale) and failing it over when that is safe.

The happy path is two store round trips: the claim creates the payment with
its write-ahead attempt at the first candidate; after the acquirer answers,
one commit settles the attempt, applies the answer, stores the response and
queues the change event.  A further candidate costs one more journal commit
per failover.  What is not happy -- a retry of an answered request, a dead
owner's open attempt, a payment whose record a store failover lost -- takes
the path of :func:`_continue`, and :mod:`router.payments.resolution` keeps it
at the acquirer that may have the money.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Awaitable, Mapping

from adapters.base import (
    AcquirerResult,
    Adapter,
    Operation,
    PaymentOrder,
    ResultStatus,
    StatusQuery,
)
from adapters.credentials import Credential, StoredCredential
from adapters.declines import Decline
from adapters.errors import IntegrationError, NotProcessed
from adapters.values import frozen
from router.payments import methods, outcomes
from router.payments.answers import create_answer, problem_answer
from router.payments.cards_on_file import stored_credential_of
from router.payments.claims import Run, claim, held, settle
from router.payments.context import ApiResult, Call
from router.payments.journal import Draft, payment_draft, ref_of
from router.payments.lost import recover_lost_payment
from router.payments.models import CreatePayment
from router.payments.records import (
    Attempt,
    AttemptOutcome,
    PaymentRecord,
    Source,
    now_ms,
)
from router.payments.resolution import acquirer_of, call_acquirer, resolve
from router.payments.states import PaymentState
from router.payments.steps import Step, When
from router.problems import Problem
from router.routing.rules import route_input
from router.routing.table import RoutePlan
from router.runtime import Runtime
from router.store.ids import Ids
from router.store.keys import DocKind
from router.store.protocol import ChangeEvent, Claimed, ClaimRequest, Write
from router.telemetry import tracing

log = logging.getLogger(__name__)

S = PaymentState


@frozen
class CreateIntent:
    """What is sent to each acquirer: the same payment, in each one's credential."""

    payment_id: str
    request: CreatePayment
    #: the credential each eligible acquirer gets (acquirer name -> credential)
    credentials: Mapping[str, Credential]
    stored_credential: StoredCredential | None = None

    @property
    def operation(self) -> Operation:
        return Operation.SALE if self.request.capture else Operation.AUTHORIZE

    def order(self, key: str, acquirer: str) -> PaymentOrder:
        request = self.request
        return PaymentOrder(
            payment_id=self.payment_id,
            amount=request.amount,
            currency=request.currency,
            credential=self._credential(acquirer),
            capture=request.capture,
            idempotency_key=key,
            merchant_reference=request.merchant_reference,
            metadata=request.metadata,
            shopper_reference=request.shopper_reference,
            stored_credential=self.stored_credential,
            return_url=request.return_url,
        )

    def _credential(self, acquirer: str) -> Credential:
        found = self.credentials.get(acquirer)
        if found is None:  # journaled there before a reload took the method's way there away
            raise IntegrationError(acquirer, "credential_not_available_here")
        return found

    def send(self, adapter: Adapter, key: str) -> Awaitable[AcquirerResult]:
        return adapter.create(self.order(key, adapter.name))

    def with_id(self, payment_id: str) -> CreateIntent:
        return dataclasses.replace(self, payment_id=payment_id)

    def query(self, key: str, reference: str | None) -> StatusQuery:
        return StatusQuery(self.operation, self.payment_id, key, reference)


def _orphaned_after_ms(rt: Runtime) -> int:
    """When the reconciler first looks at a payment written ahead: once its
    owner, alive, would have settled it (the whole deadline, or the lease a
    retry would wait out), so it meets only the payments of a dead owner
    nobody retried."""
    payments = rt.config.payments
    first_check_s = rt.config.reconciler.first_check_s
    return int((max(payments.deadline_s, payments.lease_s) + first_check_s) * 1000)


def _new_payment(call: Call, request: CreatePayment, payment_id: str, now: int) -> PaymentRecord:
    return PaymentRecord(
        id=payment_id,
        tenant=call.tenant,
        livemode=call.caller.live,
        state=S.PENDING,
        amount=request.amount,
        currency=request.currency,
        capture=request.capture,
        method=methods.summary(request.method),
        merchant_reference=request.merchant_reference,
        metadata=request.metadata,
        created_ms=now,
        updated_ms=now,
        version=1,
    )


def _eligible(call: Call, request: CreatePayment) -> tuple[dict[str, Credential], dict[str, str]]:
    """The credential for every acquirer of the caller's mode that can use the
    method, and why each other one cannot.  Refuses (400, nothing sent) a
    routing hint to an acquirer that cannot, and a method no acquirer can use
    (422: the request is well formed; this router cannot carry it out)."""
    rt = call.rt
    mine = {n: a for n, a in rt.acquirers.items() if a.test_mode is not call.caller.live}
    credentials: dict[str, Credential] = {}
    refused: dict[str, str] = {}
    for name, acquirer in mine.items():
        outcome = methods.usable(request, methods.Where(name, acquirer.kind), rt.config.vaults)
        if isinstance(outcome, methods.Ineligible):
            refused[name] = outcome.reason
        else:
            credentials[name] = outcome
    hint = request.routing.acquirer if request.routing else None
    if hint is not None and hint in refused:
        raise Problem(
            422,
            "acquirer_not_eligible",
            f"the routing hint names {hint}, which cannot take this payment method: "
            f"{refused[hint]}",
            acquirer=hint,
        )
    if not credentials:
        raise Problem(
            422,
            "payment_method_not_usable",
            "no acquirer can take this payment method; nothing was sent",
            acquirers=refused,
        )
    return credentials, refused


async def create_payment(call: Call, request: CreatePayment) -> ApiResult:
    """Authorize or sell; ``call.caller`` decides the tenant and test/live mode."""
    rt, now = call.rt, now_ms()
    scope = Ids.scope(call.tenant, call.idempotency_key)
    shard = Ids.shard_of_scope(scope)
    credentials, refused = _eligible(call, request)
    stored = await stored_credential_of(call, request)
    plan = rt.routing.plan(
        route_input(
            call.caller.name,
            request,
            call.caller.live,
            methods=methods.labels(request.method),
            ineligible=refused,
        )
    )
    payment_id = rt.ids.payment_id(call.tenant, call.idempotency_key, rt.ids.epoch(now), scope)
    intent = CreateIntent(payment_id, request, credentials, stored)
    if await rt.store.suspect():
        payment_id, plan = await recover_lost_payment(call, intent, plan)
        intent = intent.with_id(payment_id)
    proposed = _new_payment(call, request, payment_id, now)
    if plan.candidates:
        first = plan.candidates[0]
        key = rt.ids.acquirer_key(payment_id, intent.operation, first)
        outcomes.journal(
            proposed,
            Attempt(acquirer=first, acquirer_key=key, operation=intent.operation, started_ms=now),
        )
    created = Write(proposed, 0, proposed.model_dump_json())
    claimed = await claim(
        call,
        intent.operation,
        ClaimRequest(
            scope=scope,
            shard=shard,
            fingerprint=rt.ids.fingerprint("POST", "/v1/payments", request.model_dump(mode="json")),
            owner=call.owner,
            lease_ms=rt.lease_ms,
            resource_id=payment_id,
            create=created,
            create_event=ChangeEvent(
                DocKind.PAYMENT, payment_id, 1, str(S.PENDING), None, call.source, now
            ),
            read=((DocKind.PAYMENT, payment_id),),
            reconcile=(ref_of(proposed), now + _orphaned_after_ms(rt)),
        ),
    )
    if not isinstance(claimed, Claimed):
        return claimed
    run = Run(call, scope, shard, claimed.resource_id)
    if claimed.created:
        draft = payment_draft(rt, proposed, created.known_doc)
        return await held(run, functools.partial(_failover, run, intent, plan, draft))
    intent = intent.with_id(claimed.resource_id)
    return await held(run, functools.partial(_continue, run, intent, plan, claimed))


async def _continue(run: Run, intent: CreateIntent, plan: RoutePlan, claimed: Claimed) -> ApiResult:
    """A retry, a takeover, or a record whose payment was kept: pick up where it is."""
    call = run.call
    payment = claimed.records.get(run.resource_id)
    if payment is None:
        payment = await _recreate(run, intent)
    assert isinstance(payment, PaymentRecord)
    draft = payment_draft(call.rt, payment)
    found = payment.open_attempt()
    if found is not None:
        return await _resume(run, intent, draft, *found)
    if payment.state is S.FAILED or (payment.state is S.PENDING and not _awaiting(payment)):
        draft.apply(outcomes.restart)
        return await _failover(run, intent, plan, draft)
    return await _answer(run, draft, Source.REPLAY)


def _awaiting(payment: PaymentRecord) -> bool:
    """Pending because the acquirer answered pending (the shopper acts next)."""
    return bool(payment.attempts) and payment.attempts[-1].outcome is AttemptOutcome.PENDING


async def _recreate(run: Run, intent: CreateIntent) -> PaymentRecord:
    """The idempotency record outlived its payment: nothing was journaled, so
    nothing can have been sent; start the payment again."""
    payment = _new_payment(run.call, intent.request, run.resource_id, now_ms())
    restored = await run.call.rt.store.restore(payment)
    if not restored:
        found = await run.call.rt.store.get_payment(run.resource_id)
        assert found is not None
        return found
    return payment


async def _resume(
    run: Run, intent: CreateIntent, draft: Draft, index: int, attempt: Attempt
) -> ApiResult:
    """An attempt a previous owner journaled but did not settle: resolve it where it went."""
    call = run.call
    acquirer = acquirer_of(call, attempt.acquirer)
    log.info("resolving an open attempt at %s left by a previous owner", attempt.acquirer)
    result = await resolve(call, acquirer, intent, attempt.acquirer_key, attempt.acquirer_reference)
    return await _settle(run, draft, index, result, Source.REPLAY)


async def _failover(run: Run, intent: CreateIntent, plan: RoutePlan, draft: Draft) -> ApiResult:
    """Try candidates in order; the first is journaled already when the claim created it."""
    call, rt = run.call, run.call.rt
    payment = draft.records[0]
    assert isinstance(payment, PaymentRecord)
    done = {a.acquirer for a in payment.attempts if a.outcome is not None}
    done -= {a.acquirer for a in payment.attempts if a.outcome is AttemptOutcome.NOT_PROCESSED}
    soft_left = rt.config.routing.max_soft_decline_retries - sum(
        1 for a in payment.attempts if a.outcome is AttemptOutcome.DECLINED
    )
    reasons: list[str] = []
    for name in plan.candidates:
        if name in done:
            continue
        index = await _journal(run, draft, name, intent.operation)
        attempt = draft.records[0].attempts[index]  # type: ignore[union-attr]
        try:
            result = await call_acquirer(call, rt.acquirers[name], intent, attempt.acquirer_key)
        except NotProcessed as exc:
            draft.apply(
                functools.partial(
                    outcomes.mark_not_processed,
                    index=index,
                    outcome=AttemptOutcome.NOT_PROCESSED,
                    reason=exc.reason,
                )
            )
            reasons.append(f"{name}: {exc.reason}")
            rt.metrics.failovers.labels(name, exc.reason).inc()
            tracing.failover(name, exc.reason)
            log.info("failing over from %s: %s", name, exc.reason)
            continue
        except IntegrationError as exc:
            draft.apply(
                functools.partial(
                    outcomes.mark_not_processed,
                    index=index,
                    outcome=AttemptOutcome.INTEGRATION_ERROR,
                    reason=exc.reason,
                )
            )
            draft.apply(functools.partial(outcomes.mark_failed, reason="integration_error"))
            return await _refuse(run, draft, _integration_problem(name, exc, run.resource_id))
        if result is not None and _soft(call, result) and soft_left > 0:
            soft_left -= 1
            draft.apply(functools.partial(outcomes.note_soft_decline, index=index, result=result))
            reasons.append(f"{name}: soft decline {result.decline.code if result.decline else ''}")
            rt.metrics.failovers.labels(name, "soft_decline").inc()
            tracing.failover(name, "soft_decline")
            continue
        return await _settle(run, draft, index, result, call.source)
    return await _exhausted(run, draft, reasons, plan)


async def _journal(run: Run, draft: Draft, name: str, operation: Operation) -> int:
    """Write the attempt ahead of its call, unless the claim already did."""
    payment = draft.records[0]
    assert isinstance(payment, PaymentRecord)
    last = payment.attempts[-1] if payment.attempts else None
    if last is not None and last.acquirer == name and last.outcome is None:
        return len(payment.attempts) - 1
    rt = run.call.rt
    key = rt.ids.acquirer_key(payment.id, operation, name)
    attempt = Attempt(acquirer=name, acquirer_key=key, operation=operation, started_ms=now_ms())
    draft.apply(functools.partial(outcomes.journal, attempt=attempt))
    rt.hooks.at(operation, Step.JOURNAL, When.BEFORE)
    await draft.commit(run.call.source, lease=run.keeping)
    rt.hooks.at(operation, Step.JOURNAL, When.AFTER)
    return len(payment.attempts) - 1


async def _settle(
    run: Run, draft: Draft, index: int, result: AcquirerResult | None, source: Source
) -> ApiResult:
    """Apply the answer (or its absence) and store it, in one commit."""
    if result is None:
        draft.apply(functools.partial(outcomes.mark_unknown, index=index, reason="outcome_unknown"))
    else:
        draft.apply(functools.partial(outcomes.apply_create, index=index, result=result))
    return await _answer(run, draft, source, after_call=True)


async def _answer(run: Run, draft: Draft, source: Source, *, after_call: bool = False) -> ApiResult:
    return await settle(
        run,
        draft,
        source,
        _operation(draft),
        create_answer,
        after_call=after_call,
        payment_id=run.resource_id,
    )


async def _exhausted(run: Run, draft: Draft, reasons: list[str], plan: RoutePlan) -> ApiResult:
    """Nobody took it: a soft decline stands, otherwise nothing was charged anywhere."""
    payment = draft.records[0]
    assert isinstance(payment, PaymentRecord)
    declined = [
        (i, a) for i, a in enumerate(payment.attempts) if a.outcome is AttemptOutcome.DECLINED
    ]
    if declined:
        index, attempt = declined[-1]
        decline = attempt.decline
        result = AcquirerResult(
            ResultStatus.DECLINED,
            attempt.acquirer_reference,
            Decline(decline.code, decline.raw) if decline else None,
        )
        return await _settle(run, draft, index, result, run.call.source)
    draft.apply(functools.partial(outcomes.mark_failed, reason="no_acquirer_available"))
    return await _refuse(
        run,
        draft,
        Problem(
            503,
            "no_acquirer_available",
            "no acquirer could take the payment; nothing was charged. Retry with the same "
            "Idempotency-Key",
            retryable=True,
            headers={"Retry-After": "2"},
            payment_id=run.resource_id,
            attempts=reasons,
            routing=plan.notes,
        ),
    )


async def _refuse(run: Run, draft: Draft, problem: Problem) -> ApiResult:
    """Record the failure with the payment and answer the problem (stored unless retryable)."""
    result = problem_answer(problem)
    await draft.commit(run.call.source, lease=functools.partial(run.answered_with, result))
    return result


def _integration_problem(name: str, exc: IntegrationError, payment_id: str) -> Problem:
    return Problem(
        502,
        "acquirer_integration_error",
        f"acquirer {name} refused our request ({exc.reason}); operators are alerted",
        payment_id=payment_id,
    )


def _soft(call: Call, result: AcquirerResult) -> bool:
    routing = call.rt.config.routing
    decline = result.decline
    return (
        result.status is ResultStatus.DECLINED
        and decline is not None
        and (
            decline.code in routing.soft_decline_codes
            or decline.category in routing.soft_decline_categories
        )
    )


def _operation(draft: Draft) -> Operation:
    payment = draft.records[0]
    assert isinstance(payment, PaymentRecord)
    return Operation.SALE if payment.capture else Operation.AUTHORIZE
