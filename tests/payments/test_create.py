"""Creating payments, in-process against scripted acquirers: the failover rule,
what is stored under the idempotency key, and what a retry learns."""

from __future__ import annotations

from adapters.base import Operation
from adapters.declines import DeclineCode
from adapters.errors import IntegrationError, NotProcessed
from router.payments.create import create_payment
from router.payments.models import CreatePayment
from tests.payments.harness import (
    Clock,
    CountingStore,
    Drop,
    LoseAnswer,
    LoseAnswerAndGoDown,
    ScriptedAdapter,
    call,
    declined,
    runtime,
)

SALE = CreatePayment(amount=1299, currency="EUR", payment_method="tok_visa")


async def test_a_sale_takes_two_store_steps_claim_and_settle() -> None:
    a = ScriptedAdapter("a")
    store = CountingStore()
    rt = runtime({"a": a}, store=store)
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["status"], result.final) == (201, "captured", True)
    assert store.steps == {"claim": 1, "commit": 1}
    assert a.charges() == {result.body["id"]: 1}


async def test_a_retry_replays_the_stored_answer_without_calling_again() -> None:
    a = ScriptedAdapter("a")
    rt = runtime({"a": a})
    first = await create_payment(call(rt, "k1"), SALE)
    again = await create_payment(call(rt, "k1"), SALE)
    assert (again.status, again.body, again.replayed) == (201, first.body, True)
    assert len(a.calls) == 1


async def test_not_processed_fails_over_to_the_next_acquirer() -> None:
    a = ScriptedAdapter("a").then(Operation.SALE, NotProcessed("a", "connect_failed"))
    b = ScriptedAdapter("b")
    rt = runtime({"a": a, "b": b})
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["acquirer"]) == (201, "b")
    assert [x["outcome"] for x in result.body["attempts"]] == ["not_processed", "approved"]
    assert a.charges() + b.charges() == {result.body["id"]: 1}


async def test_a_lost_answer_is_replayed_at_the_same_acquirer_never_another() -> None:
    a = ScriptedAdapter("a").then(Operation.SALE, LoseAnswer())
    b = ScriptedAdapter("b")
    rt = runtime({"a": a, "b": b})
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["acquirer"]) == (201, "a")
    assert b.calls == []
    assert len({key for _, key in a.calls}) == 1  # the replay used the same acquirer key
    assert a.charges() == {result.body["id"]: 1}


async def test_an_unresolvable_outcome_answers_unknown_and_the_retry_learns_the_truth() -> None:
    a = ScriptedAdapter("a").then(Operation.SALE, LoseAnswerAndGoDown())
    b = ScriptedAdapter("b")
    rt = runtime({"a": a, "b": b})
    unknown = await create_payment(call(rt, "k1"), SALE)
    assert (unknown.status, unknown.body["status"], unknown.final) == (202, "unknown", False)
    a.down = False  # the acquirer is back
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["id"], result.body["status"]) == (
        201,
        unknown.body["id"],
        "captured",
    )
    assert b.calls == []
    assert a.charges() == {unknown.body["id"]: 1}


async def test_a_dropped_request_stays_unknown_until_proven_never_received() -> None:
    a = ScriptedAdapter("a").then(Operation.SALE, Drop(), Drop(), Drop())
    b = ScriptedAdapter("b")
    rt = runtime({"a": a, "b": b}, payments={"same_acquirer_replays": 2})
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["status"]) == (202, "unknown")
    assert b.calls == []


async def test_a_soft_decline_is_retried_once_elsewhere_and_keeps_both_codes() -> None:
    a = ScriptedAdapter("a").then(Operation.SALE, declined(DeclineCode.ISSUER_UNAVAILABLE, "91"))
    b = ScriptedAdapter("b")
    rt = runtime({"a": a, "b": b}, routing={"soft_decline_categories": ["soft"]})
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["status"], result.body["acquirer"]) == (201, "captured", "b")
    first = result.body["attempts"][0]
    assert (first["acquirer"], first["outcome"]) == ("a", "declined")
    assert first["decline"] == {"code": "issuer_unavailable", "raw_code": "91", "category": "soft"}


async def test_a_soft_decline_that_nobody_else_takes_stands() -> None:
    a = ScriptedAdapter("a").then(Operation.SALE, declined(DeclineCode.TRY_AGAIN_LATER, "91"))
    b = ScriptedAdapter("b").then(Operation.SALE, NotProcessed("b", "connect_failed"))
    rt = runtime({"a": a, "b": b}, routing={"soft_decline_codes": ["try_again_later"]})
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["status"], result.body["acquirer"]) == (201, "declined", "a")
    assert result.body["decline"] == {
        "code": "try_again_later",
        "raw_code": "91",
        "category": "soft",
    }


async def test_a_hard_decline_is_never_retried_elsewhere() -> None:
    a = ScriptedAdapter("a").then(Operation.SALE, declined(DeclineCode.LOST_OR_STOLEN, "43"))
    b = ScriptedAdapter("b")
    rt = runtime({"a": a, "b": b}, routing={"soft_decline_categories": ["soft"]})
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["status"], result.body["decline_code"]) == (
        201,
        "declined",
        "lost_or_stolen",
    )
    assert b.calls == []


async def test_an_integration_error_is_502_stored_and_never_failed_over() -> None:
    a = ScriptedAdapter("a").then(Operation.SALE, IntegrationError("a", "unauthorized"))
    b = ScriptedAdapter("b")
    rt = runtime({"a": a, "b": b})
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["code"], result.final) == (
        502,
        "acquirer_integration_error",
        True,
    )
    assert b.calls == []
    again = await create_payment(call(rt, "k1"), SALE)
    assert (again.status, again.replayed) == (502, True)


async def test_when_nobody_takes_it_nothing_is_stored_and_the_retry_succeeds() -> None:
    down = NotProcessed("x", "connect_failed")
    a = ScriptedAdapter("a").then(Operation.SALE, down)
    b = ScriptedAdapter("b").then(Operation.SALE, down)
    rt = runtime({"a": a, "b": b})
    refused = await create_payment(call(rt, "k1"), SALE)
    assert (refused.status, refused.body["code"], refused.final) == (
        503,
        "no_acquirer_available",
        False,
    )
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["id"]) == (201, refused.body["payment_id"])
    assert a.charges() + b.charges() == {refused.body["payment_id"]: 1}


async def test_a_store_failure_after_the_call_says_so_and_the_retry_learns_the_result() -> None:
    a = ScriptedAdapter("a")
    clock = Clock()
    store = CountingStore(clock=clock)
    rt = runtime({"a": a}, store=store)
    store.fail_commits = 2  # the settle, and the release after it
    lost = await create_payment(call(rt, "k1"), SALE)
    assert (lost.status, lost.body["code"], lost.final) == (503, "outcome_not_recorded", False)
    clock.advance(2)  # the owner could not release its lease: it expires
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["id"], result.body["status"]) == (
        201,
        lost.body["payment_id"],
        "captured",
    )
    assert a.charges() == {lost.body["payment_id"]: 1}


async def test_a_payment_pinned_to_an_acquirer_a_reload_removed_waits_for_it() -> None:
    """The answer 'not configured' must change when the acquirer is back: never stored."""
    a = ScriptedAdapter("a").then(Operation.SALE, LoseAnswerAndGoDown())
    b = ScriptedAdapter("b")
    store = CountingStore()
    rt = runtime({"a": a, "b": b}, store=store)
    unknown = await create_payment(call(rt, "k1"), SALE)
    assert unknown.body["status"] == "unknown"
    without_a = runtime({"b": b}, store=store)
    waiting = await create_payment(call(without_a, "k1"), SALE)
    assert (waiting.status, waiting.body["code"], waiting.final) == (
        503,
        "acquirer_not_configured",
        False,
    )
    a.down = False
    result = await create_payment(call(runtime({"a": a, "b": b}, store=store), "k1"), SALE)
    assert (result.status, result.body["id"], result.body["acquirer"]) == (
        201,
        unknown.body["id"],
        "a",
    )
    assert b.calls == []
