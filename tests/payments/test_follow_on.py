"""Captures, voids and refunds, in-process: pinned to the acquirer that holds
the funds, journaled inside the records, answered from them."""

from __future__ import annotations

import asyncio

from adapters.base import Operation
from adapters.errors import NotProcessed
from router.ops.reconciler import reconcile_once
from router.payments.create import create_payment
from router.payments.follow_on import capture_payment, void_payment
from router.payments.models import CreatePayment, CreateRefund
from router.payments.refunds import refund_payment
from router.runtime import Runtime
from tests.payments.harness import (
    Clock,
    CountingStore,
    LoseAnswer,
    LoseAnswerAndGoDown,
    ScriptedAdapter,
    call,
    runtime,
)

AUTHORIZE = CreatePayment(amount=5000, currency="EUR", payment_method="tok_visa", capture=False)
SALE = CreatePayment(amount=1000, currency="EUR", payment_method="tok_visa")


async def _authorized(rt: Runtime, key: str = "auth-1") -> str:
    result = await create_payment(call(rt, key), AUTHORIZE)
    assert (result.status, result.body["status"]) == (201, "authorized")
    return str(result.body["id"])


async def test_a_partial_capture_is_answered_200_and_replayed() -> None:
    a = ScriptedAdapter("a")
    rt = runtime({"a": a})
    pid = await _authorized(rt)
    result = await capture_payment(call(rt, "cap-1"), pid, 4000)
    assert (result.status, result.body["status"], result.body["captured_amount"]) == (
        200,
        "captured",
        4000,
    )
    again = await capture_payment(call(rt, "cap-1"), pid, 4000)
    assert (again.status, again.replayed) == (200, True)
    assert [op for op, _ in a.calls].count(Operation.CAPTURE) == 1


async def test_a_capture_takes_three_store_steps() -> None:
    store = CountingStore()
    rt = runtime({"a": ScriptedAdapter("a")}, store=store)
    pid = await _authorized(rt)
    store.steps.clear()
    await capture_payment(call(rt, "cap-1"), pid, None)
    assert store.steps == {"claim": 1, "commit": 2}  # claim+read, journal (lock), settle


async def test_a_lost_capture_answer_is_replayed_at_the_same_acquirer() -> None:
    a = ScriptedAdapter("a").then(Operation.CAPTURE, LoseAnswer())
    rt = runtime({"a": a})
    pid = await _authorized(rt)
    result = await capture_payment(call(rt, "cap-1"), pid, None)
    assert (result.status, result.body["status"]) == (200, "captured")
    keys = {key for op, key in a.calls if op is Operation.CAPTURE}
    assert len(keys) == 1


async def test_a_capture_the_reconciler_settled_is_answered_200_on_retry() -> None:
    """Issue 11, case 2: never '409 capture_not_allowed' for a capture that succeeded."""
    a = ScriptedAdapter("a").then(Operation.CAPTURE, LoseAnswerAndGoDown())
    rt = runtime({"a": a})
    pid = await _authorized(rt)
    unknown = await capture_payment(call(rt, "cap-1"), pid, None)
    assert (unknown.status, unknown.body["pending_operation"], unknown.final) == (
        202,
        "capture",
        False,
    )
    a.down = False
    assert await reconcile_once(rt) == 1
    result = await capture_payment(call(rt, "cap-1"), pid, None)
    assert (result.status, result.body["status"], result.replayed) == (200, "captured", False)


async def test_a_capture_and_a_void_never_run_together() -> None:
    a = ScriptedAdapter("a")
    rt = runtime({"a": a})
    pid = await _authorized(rt)
    capture, void = await asyncio.gather(
        capture_payment(call(rt, "cap-1"), pid, None), void_payment(call(rt, "void-1"), pid)
    )
    statuses = sorted((capture.status, void.status))
    assert statuses == [200, 409]
    loser = capture if capture.status == 409 else void
    assert loser.body["code"] in ("payment_operation_in_progress", "void_not_allowed")


async def test_a_capture_after_a_void_is_refused_and_the_refusal_replayed() -> None:
    rt = runtime({"a": ScriptedAdapter("a")})
    pid = await _authorized(rt)
    assert (await void_payment(call(rt, "void-1"), pid)).body["status"] == "voided"
    refused = await capture_payment(call(rt, "cap-1"), pid, None)
    assert (refused.status, refused.body["code"], refused.body["payment_status"]) == (
        409,
        "capture_not_allowed",
        "voided",
    )
    again = await capture_payment(call(rt, "cap-1"), pid, None)
    assert (again.status, again.replayed) == (409, True)


async def test_a_capture_the_acquirer_did_not_process_can_be_retried() -> None:
    a = ScriptedAdapter("a").then(Operation.CAPTURE, NotProcessed("a", "connect_failed"))
    rt = runtime({"a": a})
    pid = await _authorized(rt)
    refused = await capture_payment(call(rt, "cap-1"), pid, None)
    assert (refused.status, refused.body["code"], refused.final) == (
        503,
        "acquirer_unavailable",
        False,
    )
    result = await capture_payment(call(rt, "cap-1"), pid, None)
    assert (result.status, result.body["status"]) == (200, "captured")


async def test_another_callers_payment_is_not_found() -> None:
    rt = runtime({"a": ScriptedAdapter("a")})
    pid = await _authorized(rt)
    result = await capture_payment(call(rt, "cap-1", caller="other"), pid, None)
    assert (result.status, result.body["code"]) == (404, "payment_not_found")


async def test_concurrent_refunds_never_exceed_what_was_captured() -> None:
    a = ScriptedAdapter("a")
    rt = runtime({"a": a})
    sale = await create_payment(call(rt, "sale-1"), SALE)
    pid = str(sale.body["id"])
    results = await asyncio.gather(
        *(refund_payment(call(rt, f"r-{i}"), pid, CreateRefund(amount=300)) for i in range(6))
    )
    assert sorted(r.status for r in results) == [201, 201, 201, 422, 422, 422]
    assert sum(1 for op, _, _ in a.books.values() if op is Operation.REFUND) == 3
    payment = await rt.store.get_payment(pid)
    assert payment is not None
    assert (payment.refunded_amount, payment.state) == (900, "partially_refunded")


async def test_a_refund_whose_answer_was_lost_is_resolved_there_once() -> None:
    a = ScriptedAdapter("a").then(Operation.REFUND, LoseAnswerAndGoDown())
    clock = Clock()
    rt = runtime({"a": a}, store=CountingStore(clock=clock))
    sale = await create_payment(call(rt, "sale-1"), SALE)
    pid = str(sale.body["id"])
    unknown = await refund_payment(call(rt, "r-1"), pid, CreateRefund(amount=400))
    assert (unknown.status, unknown.body["status"]) == (202, "unknown")
    a.down = False
    result = await refund_payment(call(rt, "r-1"), pid, CreateRefund(amount=400))
    assert (result.status, result.body["status"], result.body["id"]) == (
        201,
        "succeeded",
        unknown.body["id"],
    )
    assert len({key for op, key in a.calls if op is Operation.REFUND}) == 1  # one acquirer key
    assert sum(1 for op, _, _ in a.books.values() if op is Operation.REFUND) == 1
    payment = await rt.store.get_payment(pid)
    assert payment is not None
    assert (payment.refunded_amount, payment.refund_holds) == (400, {})
