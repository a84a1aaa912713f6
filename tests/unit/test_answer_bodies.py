"""The answer bodies are built directly from the records, without the view
models; the views stay the published schema, so every body must be exactly
what its view would dump: the same keys, the same values, the same JSON."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import Operation
from adapters.declines import DeclineCategory, DeclineCode
from router.payments import money
from router.payments.models import PaymentView, RefundView, payment_body, refund_body
from router.payments.records import (
    Attempt,
    AttemptOutcome,
    DeclineInfo,
    MethodSummary,
    OperationRecord,
    PaymentRecord,
    RefundRecord,
)
from router.payments.states import OperationState, PaymentState

text = st.text(min_size=1, max_size=12)
maybe_text = st.none() | text
moment = st.integers(min_value=0, max_value=4_102_444_800_000)  # up to 2100
declines = st.none() | st.builds(
    DeclineInfo,
    code=st.sampled_from(DeclineCode),
    raw=text,
    category=st.sampled_from(DeclineCategory),
)
attempts = st.builds(
    Attempt,
    acquirer=text,
    acquirer_key=text,
    operation=st.sampled_from(Operation),
    started_ms=moment,
    outcome=st.none() | st.sampled_from(AttemptOutcome),
    acquirer_reference=maybe_text,
    reason=maybe_text,
    decline=declines,
)
operations = st.builds(
    OperationRecord,
    id=text,
    operation=st.sampled_from([Operation.CAPTURE, Operation.VOID]),
    amount=st.integers(min_value=1, max_value=10**6),
    state=st.sampled_from(OperationState),
    attempt=attempts,
    decline=declines,
)
next_actions = st.none() | st.fixed_dictionaries(
    {"url": st.just("https://acs.example/3ds")},
    optional={
        "type": st.sampled_from(["redirect", "sdk"]),
        "method": st.sampled_from(["GET", "POST"]),
        "data": st.dictionaries(text, text, max_size=2),
    },
)
payments = st.builds(
    PaymentRecord,
    id=text,
    tenant=text,
    state=st.sampled_from(PaymentState),
    livemode=st.booleans(),
    amount=st.integers(min_value=1, max_value=money.MAX_AMOUNT),
    currency=st.sampled_from(sorted(money.EXPONENTS)),
    capture=st.booleans(),
    method=st.builds(
        MethodSummary,
        type=st.sampled_from(["acquirer_tokens", "vault", "network_token"]),
        hint=st.text(max_size=8),
        acquirers=st.lists(text, max_size=3),
    ),
    merchant_reference=maybe_text,
    metadata=st.dictionaries(text, st.text(max_size=20), max_size=3),
    acquirer=maybe_text,
    acquirer_reference=maybe_text,
    decline=declines,
    failure_reason=maybe_text,
    next_action=next_actions,
    network_transaction_id=maybe_text,
    captured_amount=st.integers(min_value=0, max_value=10**6),
    refunded_amount=st.integers(min_value=0, max_value=10**6),
    refund_ids=st.lists(text, max_size=3),
    attempts=st.lists(attempts, max_size=3),
    operations=st.lists(operations, max_size=2),
    created_ms=moment,
    updated_ms=moment,
)
refunds = st.builds(
    RefundRecord,
    id=text,
    payment_id=text,
    tenant=text,
    amount=st.integers(min_value=1, max_value=10**6),
    currency=st.sampled_from(sorted(money.EXPONENTS)),
    state=st.sampled_from(OperationState),
    acquirer=text,
    acquirer_reference=maybe_text,
    decline=declines,
    reason=maybe_text,
    merchant_reference=maybe_text,
    created_ms=moment,
    updated_ms=moment,
)


@given(payments)
def test_a_payment_body_is_exactly_what_its_view_dumps(payment: PaymentRecord) -> None:
    body = payment_body(payment)
    assert body == PaymentView.of(payment).model_dump(mode="json")
    assert orjson.dumps(body) == orjson.dumps(PaymentView.model_validate(body).model_dump())
    # and each field says what the record says
    p = payment
    assert (body["id"], body["status"], body["amount"], body["currency"]) == (
        p.id,
        p.state,
        p.amount,
        p.currency,
    )
    assert (body["acquirer"], body["acquirer_reference"]) == (p.acquirer, p.acquirer_reference)
    assert body["decline_code"] == (p.decline.code if p.decline else None)
    assert (body["captured_amount"], body["refunded_amount"]) == (
        p.captured_amount,
        p.refunded_amount,
    )
    assert body["refunds"] == p.refund_ids
    assert body["metadata"] == p.metadata
    assert [(a["acquirer"], a["outcome"], a["reason"]) for a in body["attempts"]] == [
        (a.acquirer, a.outcome, a.reason) for a in p.attempts
    ]
    open_op = p.open_operation()
    assert body["pending_operation"] == (open_op.operation if open_op else None)


@given(refunds)
def test_a_refund_body_is_exactly_what_its_view_dumps(refund: RefundRecord) -> None:
    body = refund_body(refund)
    assert body == RefundView.of(refund).model_dump(mode="json")
    assert orjson.dumps(body) == orjson.dumps(RefundView.model_validate(body).model_dump())
    r = refund
    assert (body["id"], body["payment_id"], body["status"], body["amount"]) == (
        r.id,
        r.payment_id,
        r.state,
        r.amount,
    )
    assert (body["acquirer"], body["acquirer_reference"], body["reason"]) == (
        r.acquirer,
        r.acquirer_reference,
        r.reason,
    )
    assert body["decline_code"] == (r.decline.code if r.decline else None)


def test_a_payment_body_holds_only_json_types_not_enums() -> None:
    payment = PaymentRecord(
        id="pay_1",
        tenant="t",
        state=PaymentState.DECLINED,
        amount=1299,
        currency="EUR",
        capture=True,
        decline=DeclineInfo(code=DeclineCode.DO_NOT_HONOR, raw="05", category=DeclineCategory.HARD),
    )
    body = payment_body(payment)
    assert type(body["status"]) is str
    assert type(body["decline_code"]) is str
    assert body["decline"] == {"code": "do_not_honor", "raw_code": "05", "category": "hard"}
