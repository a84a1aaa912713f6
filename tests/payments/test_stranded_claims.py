"""Claims the store could not complete or release as their request ended: written
again in the background, so a caller's retry is not refused for a whole lease."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import Operation
from router.payments.create import create_payment
from router.payments.follow_on import capture_payment
from router.payments.models import CreatePayment
from router.payments.stranded import Fate, StrandedClaims
from router.store.protocol import Finish, Lease, StoreUnavailable
from tests.payments.harness import Clock, CountingStore, ScriptedAdapter, call, runtime

SALE = CreatePayment(amount=1299, currency="EUR", payment_method="tok_visa")
AUTHORIZE = CreatePayment(amount=5000, currency="EUR", payment_method="tok_visa", capture=False)
NOTHING = dict.fromkeys(Fate, 0)


class Seconds:
    """A monotonic clock for the stranded set, moved on by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_release_the_store_refused_is_written_once_it_is_back() -> None:
    a = ScriptedAdapter("a")
    store = CountingStore()
    rt = runtime({"a": a}, store=store, payments={"lease_s": 60})
    store.fail_commits = 2  # the settle, and the release after it
    lost = await create_payment(call(rt, "k1"), SALE)
    assert (lost.status, lost.body["code"]) == (503, "outcome_not_recorded")
    assert len(rt.stranded) == 1

    busy = await create_payment(call(rt, "k1"), SALE)
    assert (busy.status, busy.body["code"]) == (409, "idempotency_request_in_flight")

    assert await rt.stranded.retry(rt.store) == {**NOTHING, Fate.RELEASED: 1}
    assert len(rt.stranded) == 0
    result = await create_payment(call(rt, "k1"), SALE)  # no wait for the 60 s lease
    assert (result.status, result.body["id"], result.body["status"]) == (
        201,
        lost.body["payment_id"],
        "captured",
    )
    assert a.charges() == {lost.body["payment_id"]: 1}


class LosesClaimReplies(CountingStore):
    """Takes the claim, then loses the reply (the connection broke after the send)."""

    lose = 1

    async def claim(self, request: Any) -> Any:
        outcome = await super().claim(request)
        if self.lose:
            self.lose -= 1
            raise StoreUnavailable("redis: ConnectionError: the reply was lost")
        return outcome


async def test_a_claim_whose_reply_was_lost_is_given_back_once_the_store_is_back() -> None:
    a = ScriptedAdapter("a")
    store = LosesClaimReplies()
    rt = runtime({"a": a}, store=store, payments={"lease_s": 60})
    with pytest.raises(StoreUnavailable):  # answered 503 store_unavailable
        await create_payment(call(rt, "k1"), SALE)
    busy = await create_payment(call(rt, "k1"), SALE)
    assert (busy.status, busy.body["code"]) == (409, "idempotency_request_in_flight")
    assert await rt.stranded.retry(rt.store) == {**NOTHING, Fate.RELEASED: 1}
    result = await create_payment(call(rt, "k1"), SALE)
    assert (result.status, result.body["status"]) == (201, "captured")
    assert a.charges() == {result.body["id"]: 1}


async def test_a_final_answer_the_store_refused_is_stored_once_it_is_back() -> None:
    a = ScriptedAdapter("a")
    store = CountingStore()
    rt = runtime({"a": a}, store=store, payments={"lease_s": 60})
    authorized = await create_payment(call(rt, "auth-1"), AUTHORIZE)
    pid = authorized.body["id"]
    store.fail_commits = 1  # the refusal's only commit, which would store it
    refused = await capture_payment(call(rt, "cap-1"), pid, 6000)
    assert (refused.status, refused.body["code"], refused.final) == (
        422,
        "capture_exceeds_authorization",
        True,
    )
    assert await rt.stranded.retry(rt.store) == {**NOTHING, Fate.RELEASED: 1}
    again = await capture_payment(call(rt, "cap-1"), pid, 6000)
    assert (again.status, again.body, again.replayed) == (422, refused.body, True)
    assert [operation for operation, _ in a.calls] == [Operation.AUTHORIZE]


async def test_a_stranded_claim_someone_else_took_over_is_left_alone() -> None:
    a = ScriptedAdapter("a")
    clock = Clock()
    store = CountingStore(clock=clock)
    rt = runtime({"a": a}, store=store, payments={"lease_s": 60})
    store.fail_commits = 2
    lost = await create_payment(call(rt, "k1"), SALE)
    clock.advance(61)  # the store's lease lapses before the retry runs (its own clock)
    result = await create_payment(call(rt, "k1"), SALE)  # a new owner finishes the payment
    assert (result.status, result.body["id"]) == (201, lost.body["payment_id"])

    assert await rt.stranded.retry(rt.store) == {**NOTHING, Fate.TAKEN: 1}
    again = await create_payment(call(rt, "k1"), SALE)
    assert (again.status, again.body, again.replayed) == (201, result.body, True)
    assert a.charges() == {lost.body["payment_id"]: 1}


async def test_a_stranded_claim_past_its_lease_is_not_written() -> None:
    store = CountingStore()
    clock = Seconds()
    stranded = StrandedClaims(clock=clock)
    stranded.add(3, Lease("scope-1", "owner-1", Finish.RELEASE), lease_ms=2000)
    clock.now += 2.0
    assert await stranded.retry(store) == {**NOTHING, Fate.LAPSED: 1}
    assert (len(stranded), store.steps["commit"]) == (0, 0)


async def test_a_pass_stops_after_a_batch_with_a_refusal_and_keeps_the_rest() -> None:
    store = CountingStore()
    stranded = StrandedClaims(batch=2)
    for i in range(5):
        stranded.add(i, Lease(f"scope-{i}", f"owner-{i}", Finish.RELEASE), lease_ms=60_000)
    store.fail_commits = 1
    # none of the claims exists in this store: each is someone else's now
    assert await stranded.retry(store) == {**NOTHING, Fate.TAKEN: 1}
    assert (len(stranded), store.steps["commit"]) == (4, 2)
    assert await stranded.retry(store) == {**NOTHING, Fate.TAKEN: 4}
    assert len(stranded) == 0


async def test_the_stranded_set_is_bounded_and_says_what_it_dropped() -> None:
    stranded = StrandedClaims(limit=2)
    leases = [Lease(f"scope-{i}", "owner", Finish.RELEASE) for i in range(3)]
    fates = [stranded.add(0, lease, lease_ms=1000) for lease in leases]
    assert fates == [None, None, Fate.DROPPED]
    assert stranded.add(0, leases[0], lease_ms=1000) is None  # one claim, one entry
    assert len(stranded) == 2


def test_two_requests_on_one_key_each_keep_their_own_close() -> None:
    stranded = StrandedClaims()
    for owner in ("owner-1", "owner-2"):
        stranded.add(0, Lease("scope-1", owner, Finish.RELEASE), lease_ms=1000)
    assert len(stranded) == 2
