"""The per-core benchmark measures latency once more with the journal's
writes acknowledged before they reach the disk; the production policy must
be back afterwards, whatever happened meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.run import _added
from benchmarks.stack import stack
from tests.procs.redis import cli


def _fsync(port: int) -> str:
    return cli(port, "CONFIG", "GET", "appendfsync").split()[-1]


async def test_the_fsync_policy_is_changed_for_the_block_and_put_back_after(
    tmp_path: Path,
) -> None:
    async with stack(tmp_path) as s:
        redis = s.start_redis()
        assert _fsync(redis.port) == "always"
        with s.redis_fsync("everysec"):
            assert _fsync(redis.port) == "everysec"
        assert _fsync(redis.port) == "always"
        with pytest.raises(RuntimeError), s.redis_fsync("no"):
            raise RuntimeError("a run that failed half way")
        assert _fsync(redis.port) == "always"


def test_what_each_side_adds_is_its_latency_less_the_direct_calls() -> None:
    direct = {"p50": 1.25, "p99": 2.0}
    added = _added({"router": {"p50": 3.0, "p99": 5.5}}, direct)
    assert added == {
        "router": {
            "latency_ms": {"p50": 3.0, "p99": 5.5},
            "added_p50_ms": 1.75,
            "added_p99_ms": 3.5,
        }
    }
