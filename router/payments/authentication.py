"""Completing a payment that waits for the shopper (3-D Secure, a redirect).

A create answered ``pending`` with a ``next_action`` sends the shopper to the
acquirer's page.  When the shopper is back, the merchant calls
``POST /v1/payments/{id}/authenticate`` with whatever the return URL carried
(Adyen: ``redirectResult``); the acquirer of the pending create is asked for
the result (Adyen ``/payments/details``; Stripe, Checkout.com and the sandbox:
a read of the payment) and it is applied like any other answer to that
create.  Webhooks and the reconciler resolve the same payment by the same
appliers, so whichever arrives first wins and the others change nothing.

No idempotency key is needed: the call is itself idempotent.  A payment that
is no longer pending answers as it is (a retry after the shopper finished
sees the result); the acquirer gets a key derived from the payment and the
details, so a repeat with the same details is a replay there too.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping

import orjson

from adapters.base import AcquirerResult, AuthenticationOrder, Operation
from adapters.errors import IntegrationError, NotProcessed, OutcomeUnknown
from router.payments import outcomes
from router.payments.journal import payment_draft
from router.payments.models import PaymentView
from router.payments.reads import load_payment, not_found
from router.payments.records import PaymentRecord, Source
from router.payments.states import PaymentState
from router.problems import Problem, outcome_not_recorded
from router.routing.acquirers import invoke
from router.runtime import Runtime
from router.store.protocol import StoreUnavailable


def _apply(payment: PaymentRecord, *, index: int, result: AcquirerResult) -> bool:
    return outcomes.apply_create(payment, index, result)


def _acquirer_key(rt: Runtime, payment: PaymentRecord, details: Mapping[str, str]) -> str:
    digest = hashlib.sha256(orjson.dumps(dict(details), option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert payment.acquirer is not None
    return rt.ids.acquirer_key(
        f"{payment.id}:{digest[:32]}", Operation.AUTHENTICATE, payment.acquirer
    )


async def authenticate_payment(
    rt: Runtime, tenant: str, payment_id: str, details: Mapping[str, str]
) -> tuple[int, PaymentView]:
    """Submit the shopper's authentication; (200 final | 202 still pending, the payment)."""
    payment = await load_payment(rt, payment_id)
    if payment is None or payment.tenant != tenant:
        raise not_found("payment")
    if payment.state is not PaymentState.PENDING:
        return _status_of(payment), PaymentView.of(payment)
    # the create attempt the shopper is authenticating
    index = payment.last_attempt_at(payment.acquirer) if payment.acquirer else None
    acquirer = rt.acquirers.get(payment.acquirer or "")
    if index is None or acquirer is None:
        raise Problem(
            409,
            "authentication_not_expected",
            "this payment is not waiting for the shopper at a configured acquirer",
        )
    attempt = payment.attempts[index]
    order = AuthenticationOrder(
        payment_id=payment.id,
        acquirer_reference=attempt.acquirer_reference or payment.acquirer_reference,
        idempotency_key=_acquirer_key(rt, payment, details),
        details=dict(details),
        capture=payment.capture,
        create_key=attempt.acquirer_key,
    )
    call = functools.partial(acquirer.adapter.authenticate, order)
    try:
        result = await invoke(acquirer, call, rt.config.payments.deadline_s)
    except OutcomeUnknown as exc:
        raise outcome_not_recorded(payment_id=payment.id) from exc
    except NotProcessed as exc:
        raise Problem(
            503,
            "acquirer_unavailable",
            f"{acquirer.name} did not take the authentication; the payment is still pending. Retry",
            headers={"Retry-After": "2"},
            retryable=True,
        ) from exc
    except IntegrationError as exc:
        raise Problem(
            502,
            "acquirer_integration_error",
            f"{acquirer.name} refused the authentication request ({exc.reason}); "
            "the payment is still pending",
        ) from exc
    draft = payment_draft(rt, payment)
    draft.apply(functools.partial(_apply, index=index, result=result))
    try:
        await draft.commit(Source.LIVE)
    except StoreUnavailable as exc:
        raise outcome_not_recorded(payment_id=payment.id) from exc
    updated = draft.records[0]
    assert isinstance(updated, PaymentRecord)
    return _status_of(updated), PaymentView.of(updated)


def _status_of(payment: PaymentRecord) -> int:
    return 202 if payment.state in (PaymentState.PENDING, PaymentState.UNKNOWN) else 200
