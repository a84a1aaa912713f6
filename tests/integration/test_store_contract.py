"""One contract, four deployments: memory, Redis, Redis Cluster, Redis Sentinel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from router import redis_keys
from router.idempotency.memory import MemoryStore
from router.idempotency.protocol import (
    AlreadyExists,
    Busy,
    Claimed,
    LeaseLost,
    Mismatch,
    Replay,
    Store,
    VersionConflict,
    mutate_payment,
)
from router.idempotency.redis_store import RedisStore, client_from_url
from router.records import Attempt, AttemptOutcome, PaymentRecord, StoredResponse, now_ms
from router.states import PaymentState
from tests.redis_procs import RedisCluster, RedisProcess

LEASE = 60_000
RESPONSE = StoredResponse(status=201, body='{"id": "pay_1"}', headers={"Location": "/x"})


def _attempt(acquirer: str = "a", outcome: AttemptOutcome | None = None) -> Attempt:
    return Attempt(
        acquirer=acquirer,
        acquirer_key=f"pr_{acquirer}",
        operation="sale",
        started_ms=1,
        outcome=outcome,
    )


@pytest.fixture(params=["memory", "redis", "cluster", "sentinel"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url = {
        "redis": lambda: request.getfixturevalue("redis_server").url,
        "cluster": lambda: request.getfixturevalue("redis_cluster").url,
        "sentinel": lambda: request.getfixturevalue("redis_sentinel").url,
    }[request.param]()
    redis_store = RedisStore(client_from_url(url), ttl_ms=3_600_000)
    if request.param == "cluster":
        await redis_store.client.flushall()
    yield redis_store
    await redis_store.close()


async def test_a_new_key_is_claimed_with_the_offered_resource_id(store: Store) -> None:
    claim = await store.claim("s1", "fp", "owner-1", LEASE, "pay_1")
    assert isinstance(claim, Claimed)
    assert (claim.record.resource_id, claim.taken_over) == ("pay_1", False)


async def test_the_same_owner_claiming_again_after_a_lost_reply_is_still_the_owner(
    store: Store,
) -> None:
    await store.claim("s1", "fp", "owner-1", LEASE, "pay_1")
    again = await store.claim("s1", "fp", "owner-1", LEASE, "pay_other")
    assert isinstance(again, Claimed)
    assert again.record.resource_id == "pay_1"


async def test_another_owner_inside_the_lease_is_told_to_wait(store: Store) -> None:
    await store.claim("s1", "fp", "owner-1", LEASE, "pay_1")
    busy = await store.claim("s1", "fp", "owner-2", LEASE, "pay_2")
    assert isinstance(busy, Busy)
    assert 0 < busy.retry_after_ms <= LEASE


async def test_a_different_request_under_the_same_key_is_a_mismatch(store: Store) -> None:
    await store.claim("s1", "fp", "owner-1", LEASE, "pay_1")
    assert isinstance(await store.claim("s1", "other-fp", "owner-2", LEASE, "pay_2"), Mismatch)


async def test_a_completed_record_replays_its_response(store: Store) -> None:
    await store.claim("s1", "fp", "owner-1", LEASE, "pay_1")
    await store.complete("s1", "owner-1", RESPONSE)
    replay = await store.claim("s1", "fp", "owner-2", LEASE, "pay_2")
    assert isinstance(replay, Replay)
    assert replay.response == RESPONSE


async def test_completing_twice_with_the_same_response_is_idempotent(store: Store) -> None:
    await store.claim("s1", "fp", "owner-1", LEASE, "pay_1")
    await store.complete("s1", "owner-1", RESPONSE)
    await store.complete("s1", "owner-1", RESPONSE)  # a retried command after a lost reply
    with pytest.raises(LeaseLost):
        await store.complete("s1", "owner-1", RESPONSE.model_copy(update={"status": 500}))


async def test_an_expired_lease_is_taken_over_with_its_journal(store: Store) -> None:
    await store.claim("s1", "fp", "dead", 1, "pay_1")
    await store.write_attempt("s1", "dead", _attempt("b"), 1)
    await asyncio.sleep(0.05)
    claim = await store.claim("s1", "fp", "owner-2", LEASE, "pay_2")
    assert isinstance(claim, Claimed)
    assert claim.taken_over
    assert claim.record.resource_id == "pay_1"
    assert [a.acquirer for a in claim.record.attempts] == ["b"]
    assert claim.record.open_attempt() == (0, _attempt("b"))


async def test_after_a_takeover_the_old_owner_can_neither_journal_nor_complete(
    store: Store,
) -> None:
    await store.claim("s1", "fp", "dead", 1, "pay_1")
    await asyncio.sleep(0.05)
    await store.claim("s1", "fp", "owner-2", LEASE, "pay_1")
    with pytest.raises(LeaseLost):
        await store.write_attempt("s1", "dead", _attempt(), LEASE)
    with pytest.raises(LeaseLost):
        await store.settle_attempt("s1", "dead", 0, _attempt())
    with pytest.raises(LeaseLost):
        await store.complete("s1", "dead", RESPONSE)


async def test_journal_lines_are_written_ahead_and_settled_in_place(store: Store) -> None:
    await store.claim("s1", "fp", "o", LEASE, "pay_1")
    index = await store.write_attempt("s1", "o", _attempt("a"), LEASE)
    assert index == 0
    assert index == await store.write_attempt("s1", "o", _attempt("a"), LEASE)  # lost reply
    await store.settle_attempt("s1", "o", 0, _attempt("a", AttemptOutcome.NOT_PROCESSED))
    assert await store.write_attempt("s1", "o", _attempt("b"), LEASE) == 1
    record = await store.get_idem("s1")
    assert record is not None
    assert [(a.acquirer, a.outcome) for a in record.attempts] == [
        ("a", AttemptOutcome.NOT_PROCESSED),
        ("b", None),
    ]


async def test_release_hands_the_record_on_with_its_resource_id(store: Store) -> None:
    await store.claim("s1", "fp", "o", LEASE, "pay_1")
    await store.write_attempt("s1", "o", _attempt("a", AttemptOutcome.NOT_PROCESSED), LEASE)
    await store.release("s1", "o")
    claim = await store.claim("s1", "fp", "o2", LEASE, "pay_2")
    assert isinstance(claim, Claimed)
    assert claim.record.resource_id == "pay_1"
    assert len(claim.record.attempts) == 1


async def test_many_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    results = await asyncio.gather(
        *(store.claim("race", "fp", f"owner-{i}", LEASE, f"pay_{i}") for i in range(40))
    )
    assert sum(isinstance(r, Claimed) for r in results) == 1
    assert sum(isinstance(r, Busy) for r in results) == 39


def _payment(pid: str = "pay_1") -> PaymentRecord:
    return PaymentRecord(
        id=pid, caller="c", state=PaymentState.PENDING, amount=100, currency="EUR", capture=True
    )


async def test_payments_are_created_once_and_replaced_by_version(store: Store) -> None:
    await store.create_payment(_payment())
    with pytest.raises(AlreadyExists):
        await store.create_payment(_payment())
    current = await store.get_payment("pay_1")
    assert current is not None
    newer = current.model_copy(update={"state": PaymentState.AUTHORIZED, "version": 1})
    await store.replace_payment(newer, 0)
    with pytest.raises(VersionConflict):
        await store.replace_payment(newer.model_copy(update={"version": 1}), 0)
    stored = await store.get_payment("pay_1")
    assert stored is not None
    assert (stored.state, stored.version) == (PaymentState.AUTHORIZED, 1)


async def test_concurrent_mutations_of_one_payment_all_apply(store: Store) -> None:
    await store.create_payment(_payment())

    def add_one(p: PaymentRecord) -> PaymentRecord:
        p.captured_amount += 1
        return p

    await asyncio.gather(*(mutate_payment(store, "pay_1", add_one) for _ in range(20)))
    final = await store.get_payment("pay_1")
    assert final is not None
    assert final.captured_amount == 20


async def test_unresolved_items_come_back_when_due(store: Store) -> None:
    now = now_ms()
    await store.mark_unresolved("payment:late", now + 60_000)
    await store.mark_unresolved("payment:due", now - 1)
    assert await store.due_unresolved(now, 10) == ["payment:due"]
    await store.clear_unresolved("payment:due")
    assert await store.due_unresolved(now, 10) == []


async def test_every_redis_key_expires(redis_server: RedisProcess) -> None:
    store = RedisStore(client_from_url(redis_server.url), ttl_ms=90_000)
    try:
        await store.claim("s1", "fp", "o", LEASE, "pay_1")
        await store.write_attempt("s1", "o", _attempt(), LEASE)
        await store.complete("s1", "o", RESPONSE)
        await store.create_payment(_payment())
        for key in (redis_keys.idem("s1"), redis_keys.attempts("s1"), redis_keys.payment("pay_1")):
            ttl = await store.client.pttl(key)
            assert 0 < ttl <= 90_000, key
    finally:
        await store.close()


async def test_each_records_keys_share_one_cluster_slot(redis_cluster: RedisCluster) -> None:
    client = client_from_url(redis_cluster.url)
    try:
        slots = {
            await client.cluster_keyslot(k)
            for k in (redis_keys.idem("abc"), redis_keys.attempts("abc"))
        }
        assert len(slots) == 1
    finally:
        await client.aclose()


async def test_completion_settles_the_last_journal_line_in_the_same_step(store: Store) -> None:
    await store.claim("s1", "fp", "o", LEASE, "pay_1")
    index = await store.write_attempt("s1", "o", _attempt("a"), LEASE)
    settled = _attempt("a", AttemptOutcome.APPROVED)
    await store.complete("s1", "o", RESPONSE, (index, settled))
    record = await store.get_idem("s1")
    assert record is not None
    assert record.attempts == [settled]
    assert record.response == RESPONSE


async def test_only_the_live_owner_can_extend_its_lease(store: Store) -> None:
    await store.claim("s1", "fp", "o", 50, "pay_1")
    assert await store.extend_lease("s1", "o", LEASE)
    busy = await store.claim("s1", "fp", "other", LEASE, "pay_2")
    assert isinstance(busy, Busy)
    assert busy.retry_after_ms > 1000  # pushed well past the first 50 ms
    assert not await store.extend_lease("s1", "other", LEASE)
    await store.complete("s1", "o", RESPONSE)
    assert not await store.extend_lease("s1", "o", LEASE)
