"""The fleet shares the reconciler's sweep and the outbox trim: every shard
is swept by one member, and a member that stops passing hands its shards to
the others."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter

from adapters.base import Operation
from router.ops.maintenance import UNREAD_KEEP_MS, trim_once
from router.ops.reconciler import (
    ALIVE_PASSES,
    Share,
    my_shards,
    reconcile_once,
    reconciler_loop,
    shards_of,
)
from router.payments.create import create_payment
from router.payments.models import CreatePayment
from router.payments.records import now_ms
from router.payments.states import PaymentState
from router.runtime import Runtime
from router.store.keys import ALL_SHARDS, SHARDS, shard_of
from router.store.memory import MemoryStore
from tests.helpers import eventually
from tests.payments.harness import Clock, LoseAnswerAndGoDown, ScriptedAdapter, call, runtime

SALE = CreatePayment(amount=1000, currency="EUR", payment_method="tok_visa")


async def test_a_reconciler_alone_sweeps_every_shard() -> None:
    rt = runtime({"a": ScriptedAdapter("a")})
    assert await my_shards(rt, "only") == tuple(range(SHARDS))
    assert rt.metrics.reconciler_shards._value.get() == SHARDS


async def test_two_reconcilers_sweep_every_shard_once_between_them() -> None:
    store = MemoryStore()
    first = runtime({"a": ScriptedAdapter("a")}, store=store)
    second = runtime({"a": ScriptedAdapter("a")}, store=store)
    await my_shards(first, "first")
    mine, theirs = await my_shards(second, "second"), await my_shards(first, "first")
    assert set(mine).isdisjoint(theirs)
    assert sorted(mine + theirs) == list(range(SHARDS))


def _alive_ms(rt: Runtime) -> int:
    return int(ALIVE_PASSES * rt.config.reconciler.interval_s * 1000)


async def _gone_member_owning(rt: Runtime, shard: int, other: str) -> str:
    """A member that wins ``shard`` against ``other``, noted as passing now
    (and never again)."""
    name = next(f"gone-{n}" for n in range(1000) if shard in shards_of(f"gone-{n}", [other]))
    await rt.store.reconcilers(name, now_ms(), _alive_ms(rt))
    return name


async def test_an_unknown_payment_on_a_gone_members_shard_is_resolved_by_the_one_left() -> None:
    acquirer = ScriptedAdapter("a").then(Operation.SALE, LoseAnswerAndGoDown())
    store = MemoryStore()
    left = runtime({"a": acquirer}, store=store)
    unknown = await create_payment(call(left, "k1"), SALE)
    assert unknown.body["status"] == "unknown"
    pid = str(unknown.body["id"])
    acquirer.down = False
    await _gone_member_owning(left, shard_of(pid), "left")

    # while the other member counts as alive, its shard is not ours to sweep
    assert await reconcile_once(left, shards=await my_shards(left, "left")) == 0
    assert (await store.get_payment(pid)).state is PaymentState.UNKNOWN  # type: ignore[union-attr]

    async def one_pass() -> int:
        return await reconcile_once(left, shards=await my_shards(left, "left"))

    assert await eventually(one_pass, lambda n: n == 1, seconds=10 * _alive_ms(left) / 1000) == 1
    assert (await store.get_payment(pid)).state is PaymentState.CAPTURED  # type: ignore[union-attr]
    assert acquirer.charges() == {pid: 1}


def _same(rt: Runtime) -> Runtime:
    return rt


async def test_two_members_trim_every_outbox_once_between_them() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    fleet = {
        name: runtime({"a": ScriptedAdapter("a")}, store=store, reconciler={"interval_s": 0.01})
        for name in ("first", "second")
    }
    payments = [await create_payment(call(fleet["first"], f"k{n}"), SALE) for n in range(100)]
    shares = {name: Share() for name in fleet}
    loops = [
        asyncio.create_task(reconciler_loop(functools.partial(_same, rt), name, shares[name]))
        for name, rt in fleet.items()
    ]
    try:

        async def views() -> tuple[set[int], set[int]]:
            return set(shares["first"].shards), set(shares["second"].shards)

        first, second = await eventually(
            views, lambda v: v[0].isdisjoint(v[1]) and v[0] | v[1] == set(ALL_SHARDS), seconds=5
        )
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    per_shard = Counter(shard_of(str(p.body["id"])) for p in payments)  # two events each
    clock.advance(UNREAD_KEEP_MS / 1000 + 1)
    assert await trim_once(fleet["first"], shares["first"].shards) == 2 * sum(
        per_shard[s] for s in first
    )
    assert await trim_once(fleet["second"], shares["second"].shards) == 2 * sum(
        per_shard[s] for s in second
    )
    assert await store.read("a-new-group", "c1", 1000, 0) == []


def test_a_share_is_every_shard_until_its_reconcilers_first_pass() -> None:
    assert Share().shards == tuple(range(SHARDS))
