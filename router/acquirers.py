"""The live acquirers: adapter plus the per-acquirer resilience state.

``invoke`` is the only way the orchestrator talks to an acquirer, so deadline
handling (and, later, breakers and passive health) apply to every call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from adapters.base import Adapter, NotProcessed, OutcomeUnknown

T = TypeVar("T")


@dataclass
class Acquirer:
    name: str
    adapter: Adapter
    test_mode: bool = True


async def invoke(acquirer: Acquirer, call: Callable[[], Awaitable[T]], remaining_s: float) -> T:
    """Run one acquirer call within what is left of the request deadline.

    A deadline that expires before the call starts is NotProcessed; one that
    expires during the call may have cut off a request the acquirer already
    acted on, so it is OutcomeUnknown.
    """
    if remaining_s <= 0:
        raise NotProcessed(acquirer.name, "deadline_exhausted")
    try:
        async with asyncio.timeout(remaining_s):
            return await call()
    except TimeoutError as exc:
        raise OutcomeUnknown(acquirer.name, "deadline_exceeded") from exc
