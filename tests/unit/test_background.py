"""Background loops stop with the app, even one that swallowed a cancellation."""

from __future__ import annotations

import asyncio

from router.ops.background import Loops


async def test_a_loop_that_swallows_a_cancellation_is_still_stopped() -> None:
    """What Python 3.11's asyncio.timeout does when a cancel lands as it
    expires (seen in redis-py reads): the loop carries on as if not asked."""
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    loops = Loops()
    loops.start("stubborn", stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(loops.stop("stubborn"), 5)
    assert swallowed == 1
    assert loops.dead() == []  # stopped and forgotten, not reported dead


async def test_a_loop_that_ends_by_itself_is_reported_dead() -> None:
    async def ends() -> None:
        raise RuntimeError("boom")

    loops = Loops()
    loops.start("ends", ends())
    await asyncio.sleep(0.01)
    assert loops.dead() == ["ends"]
    await loops.stop("ends")
