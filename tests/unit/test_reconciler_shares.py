"""How the fleet shares out the reconciler's shards (rendezvous hashing)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.ops.reconciler import shards_of
from router.store.keys import SHARDS

members = st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=12, unique=True)


@given(members)
def test_every_shard_is_swept_by_exactly_one_member(fleet: list[str]) -> None:
    owners = [shard for member in fleet for shard in shards_of(member, fleet)]
    assert sorted(owners) == list(range(SHARDS))


@given(members, st.data())
def test_a_member_leaving_moves_only_its_own_shards(fleet: list[str], data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(fleet))
    rest = [m for m in fleet if m != gone]
    for member in rest:
        assert set(shards_of(member, fleet)) <= set(shards_of(member, rest))


@given(members)
def test_a_member_counts_itself_even_when_its_view_lacks_it(fleet: list[str]) -> None:
    newcomer = "\x00newcomer"
    assert shards_of(newcomer, fleet) == shards_of(newcomer, [*fleet, newcomer])


def test_a_member_alone_sweeps_every_shard() -> None:
    assert shards_of("only", []) == tuple(range(SHARDS))
    assert shards_of("only", ["only"]) == tuple(range(SHARDS))
