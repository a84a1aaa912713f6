"""Where a record's keys live: the shard its id names, and that shard's hash tag on every key."""

from __future__ import annotations

import re
import zlib

from hypothesis import given
from hypothesis import strategies as st

from router.store import keys
from router.store.keys import SHARDS, DocKind


def _reference_shard(resource_id: str) -> int:
    digits = resource_id.partition("_")[2][:2]
    if len(digits) == 2 and set(digits) <= set("0123456789abcdef"):
        return int(digits, 16) % SHARDS
    return zlib.crc32(resource_id.encode()) % SHARDS


def _tag_of(key: str) -> str:
    found = re.fullmatch(r"pr:\{(s\d\d)\}:.+", key)
    assert found is not None, key
    return found.group(1)


@given(st.text(alphabet="0123456789abcdefABCDEF_pay", max_size=8))
def test_an_id_goes_to_the_shard_its_first_two_lowercase_hex_digits_name(resource_id: str) -> None:
    assert keys.shard_of(resource_id) == _reference_shard(resource_id)


def test_an_id_we_did_not_mint_still_gets_a_shard_by_its_checksum() -> None:
    assert keys.shard_of("pay_3F00") == zlib.crc32(b"pay_3F00") % SHARDS
    assert keys.shard_of("psp-reference") == zlib.crc32(b"psp-reference") % SHARDS
    assert keys.shard_of("pay_3f00") == 0x3F % SHARDS


@given(st.integers(0, 255))
def test_a_scope_goes_to_the_shard_of_its_first_two_hex_digits(first: int) -> None:
    assert keys.shard_of_hex(f"{first:02x}9e") == first % SHARDS
    assert keys.shard_of_hex(f"{first:02X}9e") == first % SHARDS


@given(st.integers(0, SHARDS - 1), st.text(alphabet="0123456789abcdef", min_size=1, max_size=40))
def test_every_key_of_a_shard_carries_that_shards_tag(shard: int, suffix: str) -> None:
    expected = f"s{shard:02d}"
    made = [
        keys.idem(shard, suffix),
        keys.outbox(shard),
        keys.unresolved(shard),
        keys.seen(shard, suffix),
        keys.placeholder(shard),
    ]
    assert [_tag_of(key) for key in made] == [expected] * len(made)


@given(st.integers(0, 255), st.text(alphabet="0123456789abcdef", min_size=22, max_size=22))
def test_a_record_lives_under_the_tag_of_its_own_shard(first: int, rest: str) -> None:
    payment_id = f"pay_{first:02x}{rest}"
    key = keys.doc(DocKind.PAYMENT, payment_id)
    assert key == f"pr:{{s{first % SHARDS:02d}}}:payment:{payment_id}"
    assert _tag_of(keys.doc(DocKind.REFUND, f"re_{first:02x}{rest}")) == f"s{first % SHARDS:02d}"
