"""The steps of a payment operation, named, so a test can stop the world at
any of them.

A payment operation is a short sequence of durable steps: claim (with the
write-ahead attempt), journal (the write-ahead of a further attempt), call
(the acquirer), settle (answer, records and outbox in one commit).  Crash-point
tests install :class:`Hooks` that raise a :class:`SimulatedCrash` right before
or right after one of them; the crash is a ``BaseException``, so no handler
of the flow runs: the process is, as far as the store can tell, dead.
"""

from __future__ import annotations

import enum
from typing import Protocol

from adapters.base import Operation


class Step(enum.StrEnum):
    CLAIM = "claim"
    JOURNAL = "journal"
    CALL = "call"
    SETTLE = "settle"


class When(enum.StrEnum):
    BEFORE = "before"
    AFTER = "after"


class SimulatedCrash(BaseException):
    """The owner 'dies' here: nothing runs after it, no lease is released."""


class Hooks(Protocol):
    def at(self, operation: Operation, step: Step, when: When) -> None: ...


class _NoHooks:
    def at(self, operation: Operation, step: Step, when: When) -> None:
        return None


NO_HOOKS: Hooks = _NoHooks()
