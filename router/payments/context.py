"""The frozen facts one payment operation runs with, and what it answers.

A :class:`Call` is built once per request and passed down; nothing in the
flows reaches for globals or closures.  An :class:`Intent` says what to send
to an acquirer under a given acquirer key and how to ask what became of it,
so the failover rule in :mod:`router.payments.resolution` works the same for
creates, captures, voids, refunds and authentications.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable
from dataclasses import field
from typing import Any, Protocol

from adapters.base import AcquirerResult, Adapter, Operation, StatusQuery
from adapters.values import frozen
from router.payments.records import Source
from router.runtime import Runtime


@frozen
class Caller:
    """Who asks: the caller's name in the config, and the key's mode."""

    name: str
    live: bool = False

    @property
    def tenant(self) -> str:
        """Who owns records and idempotency keys: test and live never mix."""
        return self.name if self.live else f"{self.name}:test"


class Deadline:
    """The whole request's time budget, failover included."""

    __slots__ = ("_loop", "_until")

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._until = self._loop.time() + seconds

    def remaining(self) -> float:
        return self._until - self._loop.time()


@frozen
class Call:
    rt: Runtime
    caller: Caller
    idempotency_key: str
    deadline: Deadline
    owner: str = field(default_factory=lambda: secrets.token_hex(16))
    source: Source = Source.LIVE

    @property
    def tenant(self) -> str:
        return self.caller.tenant


@frozen
class ApiResult:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False
    content_type: str = "application/json"
    #: False for answers that will change (pending, unknown, retryable refusals):
    #: not stored, so the caller's retry learns what really happened
    final: bool = True


class Intent(Protocol):
    """What one operation sends, given the acquirer key it goes out under."""

    @property
    def operation(self) -> Operation: ...

    def send(self, adapter: Adapter, key: str) -> Awaitable[AcquirerResult]: ...

    def query(self, key: str, reference: str | None) -> StatusQuery: ...
