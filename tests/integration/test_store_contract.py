"""One contract, five deployments: memory, Redis, Redis over TLS, Redis Cluster, Redis Sentinel.

The two atomic steps (claim, commit), the outbox they feed, and the
guarantees the payment flows lean on: a lost reply re-run is recognised, an
old owner can write nothing after a takeover, a record moves only from the
version it was read at, and its change events come out in order.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator

import pytest

from adapters.base import Operation
from router.payments.records import (
    Attempt,
    PaymentRecord,
    RefundRecord,
    Source,
    StoredResponse,
    now_ms,
)
from router.payments.states import OperationState, PaymentState
from router.store import keys
from router.store.keys import DocKind, shard_of
from router.store.memory import MemoryStore
from router.store.protocol import (
    AlreadySeen,
    Busy,
    ChangeEvent,
    Claimed,
    ClaimRequest,
    Commit,
    Committed,
    Conflict,
    Finish,
    Lease,
    LeaseLost,
    Mismatch,
    Replay,
    Write,
)
from router.store.redis.client import client_from_url
from router.store.redis.store import RedisStore
from tests.helpers import eventually
from tests.procs.redis import RedisCluster, RedisProcess, RedisSentinel

LEASE = 60_000
PID = "pay_3a" + "0" * 22
RID = "re_3a" + "1" * 22
SHARD = shard_of(PID)
RESPONSE = StoredResponse(status=201, body='{"id": "pay_1"}', headers={"Location": "/x"})

Store = MemoryStore | RedisStore


@pytest.fixture(params=["memory", "redis", "tls", "cluster", "sentinel"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url = {
        "redis": lambda: request.getfixturevalue("redis_server").url,
        "tls": lambda: request.getfixturevalue("tls_redis").tls_url,
        "cluster": lambda: request.getfixturevalue("redis_cluster").url,
        "sentinel": lambda: request.getfixturevalue("redis_sentinel").url,
    }[request.param]()
    redis_store = RedisStore.from_url(url, ttl_ms=3_600_000)  # as serve builds it
    if request.param == "cluster":
        await redis_store.client.flushall()
    yield redis_store
    await redis_store.close()


def _payment(version: int = 1, state: PaymentState = PaymentState.PENDING) -> PaymentRecord:
    return PaymentRecord(
        id=PID,
        tenant="t",
        state=state,
        amount=100,
        currency="EUR",
        capture=True,
        attempts=[
            Attempt(acquirer="a", acquirer_key="pr_a", operation=Operation.SALE, started_ms=1)
        ],
        created_ms=1,
        updated_ms=1,
        version=version,
    )


def _event(record: PaymentRecord | RefundRecord, previous: str | None = None) -> ChangeEvent:
    kind = DocKind.PAYMENT if isinstance(record, PaymentRecord) else DocKind.REFUND
    return ChangeEvent(
        kind, record.id, record.version, str(record.state), previous, Source.LIVE, now_ms()
    )


def _claim(
    owner: str = "owner-1", fp: str = "fp", lease: int = LEASE, **extra: object
) -> ClaimRequest:
    payment = _payment()
    base: dict[str, object] = {
        "scope": "s1",
        "shard": SHARD,
        "fingerprint": fp,
        "owner": owner,
        "lease_ms": lease,
        "resource_id": PID,
        "create": Write(payment, 0),
        "create_event": _event(payment),
        "read": ((DocKind.PAYMENT, PID),),
    }
    return ClaimRequest(**{**base, **extra})  # type: ignore[arg-type]


def _complete(owner: str, response: StoredResponse = RESPONSE) -> Commit:
    return Commit(shard=SHARD, lease=Lease("s1", owner, Finish.COMPLETE, response))


async def test_a_new_key_is_claimed_and_its_payment_written_ahead_in_one_step(store: Store) -> None:
    claim = await store.claim(_claim())
    assert isinstance(claim, Claimed)
    assert (claim.resource_id, claim.fresh, claim.created, claim.taken_over) == (
        PID,
        True,
        True,
        False,
    )
    payment = await store.get_payment(PID)
    assert payment == _payment()


async def test_the_same_owner_claiming_again_after_a_lost_reply_is_still_the_owner(
    store: Store,
) -> None:
    await store.claim(_claim())
    again = await store.claim(_claim())
    assert isinstance(again, Claimed)
    assert (again.resource_id, again.records[PID]) == (PID, _payment())


async def test_another_owner_inside_the_lease_is_told_to_wait(store: Store) -> None:
    await store.claim(_claim())
    busy = await store.claim(_claim("owner-2"))
    assert isinstance(busy, Busy)
    assert 0 < busy.retry_after_ms <= LEASE


async def test_a_different_request_under_the_same_key_is_a_mismatch(store: Store) -> None:
    await store.claim(_claim())
    assert isinstance(await store.claim(_claim("owner-2", "other-fp")), Mismatch)


async def test_a_completed_record_replays_its_response_and_completes_once(store: Store) -> None:
    await store.claim(_claim())
    assert isinstance(await store.commit(_complete("owner-1")), Committed)
    assert isinstance(await store.commit(_complete("owner-1")), Committed)  # a lost reply re-run
    with pytest.raises(LeaseLost):
        await store.commit(_complete("owner-1", RESPONSE.model_copy(update={"status": 500})))
    replay = await store.claim(_claim("owner-2"))
    assert isinstance(replay, Replay)
    assert replay.response == RESPONSE


async def _claim_once_expired(store: Store, owner: str) -> object:
    """Claim as ``owner`` as soon as the 1 ms lease before it has run out
    (a claim refused as Busy changes nothing)."""
    return await eventually(
        lambda: store.claim(_claim(owner)),
        lambda outcome: not isinstance(outcome, Busy),
        seconds=2,
        every=0.002,
    )


async def test_an_expired_lease_is_taken_over_with_its_records(store: Store) -> None:
    await store.claim(_claim("dead", lease=1))
    claim = await _claim_once_expired(store, "owner-2")
    assert isinstance(claim, Claimed)
    assert (claim.taken_over, claim.fresh, claim.created) == (True, False, False)
    assert claim.resource_id == PID
    payment = claim.records[PID]
    assert isinstance(payment, PaymentRecord)
    assert payment.open_attempt() == (0, payment.attempts[0])


async def test_after_a_takeover_the_old_owner_can_write_nothing(store: Store) -> None:
    await store.claim(_claim("dead", lease=1))
    assert isinstance(await _claim_once_expired(store, "owner-2"), Claimed)
    newer = _payment(2, PaymentState.AUTHORIZED)
    with pytest.raises(LeaseLost):
        await store.commit(
            Commit(shard=SHARD, writes=(Write(newer, 1),), lease=Lease("s1", "dead"))
        )
    with pytest.raises(LeaseLost):
        await store.commit(_complete("dead"))
    assert await store.get_payment(PID) == _payment()


async def test_a_record_moves_only_from_the_version_it_was_read_at(store: Store) -> None:
    await store.claim(_claim())
    newer = _payment(2, PaymentState.AUTHORIZED)
    commit = Commit(shard=SHARD, writes=(Write(newer, 1),), events=(_event(newer, "pending"),))
    assert isinstance(await store.commit(commit), Committed)
    assert isinstance(await store.commit(commit), Committed)  # the same commit re-run: done
    stale = _payment(2, PaymentState.DECLINED)
    assert isinstance(await store.commit(Commit(shard=SHARD, writes=(Write(stale, 1),))), Conflict)
    assert await store.get_payment(PID) == newer


async def test_a_payment_and_its_refund_are_written_together(store: Store) -> None:
    await store.claim(_claim())
    payment = _payment(2, PaymentState.CAPTURED)
    payment.refund_holds = {RID: 40}
    refund = RefundRecord(
        id=RID,
        payment_id=PID,
        tenant="t",
        amount=40,
        currency="EUR",
        state=OperationState.PENDING,
        acquirer="a",
        created_ms=1,
        updated_ms=1,
        version=1,
    )
    commit = Commit(
        shard=SHARD,
        writes=(Write(payment, 1), Write(refund, 0)),
        events=(_event(payment, "pending"), _event(refund)),
    )
    assert isinstance(await store.commit(commit), Committed)
    assert await store.get_refund(RID) == refund
    assert await store.get_payment(PID) == payment
    other = refund.model_copy(update={"amount": 41})
    assert isinstance(
        await store.commit(Commit(shard=SHARD, writes=(Write(other, 0),))), Conflict
    )  # a refund is created once


async def test_release_hands_the_record_on_with_its_resource_id(store: Store) -> None:
    await store.claim(_claim())
    await store.commit(Commit(shard=SHARD, lease=Lease("s1", "owner-1", Finish.RELEASE)))
    claim = await store.claim(_claim("owner-2"))
    assert isinstance(claim, Claimed)
    assert (claim.resource_id, claim.taken_over) == (PID, False)


async def test_many_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    results = await asyncio.gather(*(store.claim(_claim(f"owner-{i}")) for i in range(40)))
    assert sum(isinstance(r, Claimed) for r in results) == 1
    assert sum(isinstance(r, Busy) for r in results) == 39


async def test_only_the_live_owner_can_extend_its_lease(store: Store) -> None:
    await store.claim(_claim(lease=50))
    assert await store.extend_lease(SHARD, "s1", "owner-1", LEASE)
    busy = await store.claim(_claim("other"))
    assert isinstance(busy, Busy)
    assert busy.retry_after_ms > 1000  # pushed well past the first 50 ms
    assert not await store.extend_lease(SHARD, "s1", "other", LEASE)
    await store.commit(_complete("owner-1"))
    assert not await store.extend_lease(SHARD, "s1", "owner-1", LEASE)


async def test_a_webhook_event_is_applied_once(store: Store) -> None:
    await store.claim(_claim())
    newer = _payment(2, PaymentState.CAPTURED)
    first = Commit(shard=SHARD, writes=(Write(newer, 1),), seen="evt-digest")
    assert isinstance(await store.commit(first), Committed)
    later = Commit(shard=SHARD, writes=(Write(_payment(3), 2),), seen="evt-digest")
    assert isinstance(await store.commit(later), AlreadySeen)


async def test_change_events_come_out_of_the_outbox_in_order_until_acknowledged(
    store: Store,
) -> None:
    await store.claim(_claim())
    newer = _payment(2, PaymentState.CAPTURED)
    await store.commit(
        Commit(shard=SHARD, writes=(Write(newer, 1),), events=(_event(newer, "pending"),))
    )
    entries = await store.read("ledger", "c1", 10, 0)
    assert [(e.event.version, e.event.state, e.event.previous_state) for e in entries] == [
        (1, "pending", None),
        (2, "captured", "pending"),
    ]
    assert PaymentRecord.model_validate_json(entries[1].record) == newer
    assert await store.backlog("ledger") == 2
    assert await store.read("webhooks", "c1", 10, 0) != []  # each group reads everything
    await store.ack("ledger", entries[:1])
    assert await store.backlog("ledger") == 1
    stale = await eventually(  # once the unacknowledged entry has been idle 10 ms
        lambda: store.claim_stale("ledger", "c2", 10, 10), bool, seconds=2, every=0.005
    )
    assert [e.event.version for e in stale] == [2]


async def _two_events(store: Store) -> None:
    await store.claim(_claim())
    newer = _payment(2, PaymentState.CAPTURED)
    await store.commit(
        Commit(shard=SHARD, writes=(Write(newer, 1),), events=(_event(newer, "pending"),))
    )


async def test_the_outbox_is_trimmed_only_of_what_every_group_acknowledged(store: Store) -> None:
    await _two_events(store)
    read = await store.read("ledger", "c1", 10, 0)
    await store.ack("ledger", read[:1])
    assert await store.trim(["ledger"], unread_keep_ms=0) == 1
    left = await store.read("a-new-group", "c1", 10, 0)  # a new group reads from the start
    assert [e.event.version for e in left] == [2]


async def test_the_outbox_is_trimmed_only_in_the_shards_asked(store: Store) -> None:
    await _two_events(store)
    read = await store.read("ledger", "c1", 10, 0)
    await store.ack("ledger", read)
    others = tuple(s for s in range(keys.SHARDS) if s != SHARD)
    assert await store.trim(["ledger"], unread_keep_ms=0, shards=others) == 0
    assert await store.trim([], unread_keep_ms=-60_000, shards=others) == 0
    assert await store.trim([], unread_keep_ms=-60_000, shards=()) == 0
    assert [e.event.version for e in await store.read("a-new-group", "c1", 10, 0)] == [1, 2]
    assert await store.trim(["ledger"], unread_keep_ms=0, shards=(SHARD,)) == 2
    assert await store.read("another-group", "c1", 10, 0) == []


async def test_with_no_group_configured_the_outbox_keeps_only_recent_entries(
    store: Store,
) -> None:
    await _two_events(store)
    await store.read("webhooks", "c1", 10, 0)  # a stale group, read and never acknowledged
    assert await store.trim([], unread_keep_ms=60_000) == 0
    trimmed = 0

    async def trim_past_now() -> int:  # an entry goes once the clock passes its millisecond
        nonlocal trimmed
        trimmed += await store.trim([], unread_keep_ms=0)
        return trimmed

    assert await eventually(trim_past_now, lambda n: n >= 2, seconds=2, every=0.001) == 2
    assert await store.read("a-new-group", "c1", 10, 0) == []


async def test_reconciliation_items_come_back_when_due_and_are_held(store: Store) -> None:
    now = now_ms()
    await store.commit(
        Commit(shard=SHARD, reconcile=(("payment:late", now + 60_000), ("payment:due", now - 1)))
    )
    assert await store.due(SHARD, now, 30_000, 10) == ["payment:due"]
    assert await store.due(SHARD, now, 30_000, 10) == []  # held by whoever took it
    await store.commit(Commit(shard=SHARD, reconcile=(("payment:due", None),)))
    assert await store.due(SHARD, now + 40_000, 30_000, 10) == []


async def test_a_record_written_ahead_is_scheduled_for_the_reconciler_in_the_same_step(
    store: Store,
) -> None:
    """So a record whose owner dies before settling is looked at with nobody retrying."""
    now = now_ms()
    assert isinstance(await store.claim(_claim(reconcile=(f"payment:{PID}", now - 1))), Claimed)
    assert await store.due(SHARD, now, 30_000, 10) == [f"payment:{PID}"]
    # a claim that finds the record there already schedules nothing
    await store.commit(Commit(shard=SHARD, reconcile=((f"payment:{PID}", None),)))
    again = _claim("owner-2", scope="s2", reconcile=(f"payment:{PID}", now - 1))
    assert isinstance(await store.claim(again), Claimed)
    assert await store.due(SHARD, now, 30_000, 10) == []


async def test_the_reconcilers_are_those_that_passed_within_the_window(store: Store) -> None:
    now = now_ms()
    assert await store.reconcilers("a", now - 10_000, 15_000) == ["a"]
    assert await store.reconcilers("b", now, 15_000) == ["a", "b"]
    assert await store.reconcilers("b", now + 5_000, 15_000) == ["a", "b"]  # a: 15 s ago
    assert await store.reconcilers("b", now + 5_001, 15_000) == ["b"]  # a: gone
    assert await store.reconcilers("a", now + 5_002, 15_000) == ["a", "b"]  # a: back


async def test_a_restored_record_never_overwrites_one_in_the_store(store: Store) -> None:
    assert await store.restore(_payment(5, PaymentState.CAPTURED))
    assert not await store.restore(_payment(3, PaymentState.AUTHORIZED))
    stored = await store.get_payment(PID)
    assert stored is not None
    assert (stored.version, stored.state) == (5, PaymentState.CAPTURED)


async def test_every_redis_key_expires(redis_server: RedisProcess) -> None:
    store = RedisStore(client_from_url(redis_server.url), ttl_ms=90_000, record_ttl_ms=120_000)
    try:
        await store.claim(_claim())
        await store.commit(
            Commit(
                shard=SHARD,
                writes=(Write(_payment(2), 1),),
                events=(_event(_payment(2), "pending"),),
                reconcile=(("payment:x", now_ms()),),
                seen="evt",
                lease=Lease("s1", "owner-1", Finish.COMPLETE, RESPONSE),
            )
        )
        await store.reconcilers("worker-1", now_ms(), 15_000)
        assert await store.client.exists(keys.RECONCILERS)
        for key in await store.client.keys("*"):
            ttl = await store.client.pttl(key)
            assert 0 < ttl <= 120_000, key
    finally:
        await store.close()


async def test_all_keys_of_one_payment_share_one_cluster_slot(redis_cluster: RedisCluster) -> None:
    client = client_from_url(redis_cluster.url)
    try:
        names = (
            keys.idem(SHARD, "scope"),
            keys.doc(DocKind.PAYMENT, PID),
            keys.doc(DocKind.REFUND, RID),
            keys.outbox(SHARD),
            keys.unresolved(SHARD),
            keys.seen(SHARD, "digest"),
            keys.placeholder(SHARD),
        )
        slots = {await client.cluster_keyslot(name) for name in names}
        assert len(slots) == 1
    finally:
        await client.aclose()


async def test_a_closed_sentinel_store_leaves_no_connection_open(
    redis_sentinel: RedisSentinel,
) -> None:
    """Three clients reach the primary through the sentinels, each with a
    Sentinel of its own, and redis-py closes none of those with its client."""
    store = RedisStore.from_url(redis_sentinel.url, ttl_ms=3_600_000)
    assert isinstance(await store.claim(_claim()), Claimed)  # the pipelined client
    assert await store.get_payment(PID) is not None  # redis-py's client
    await store.close()
    del store
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
