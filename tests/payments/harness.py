"""A Runtime with scripted acquirers: the payment flows in-process, in
milliseconds, with every outcome of the taxonomy at the caller's command.

A :class:`ScriptedAdapter` keeps books like a real acquirer: what it
processed under each idempotency key, so a same-key replay answers the stored
result (as Stripe, Adyen and the sandbox do) and a status query finds it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.base import (
    AcquirerResult,
    Adapter,
    AuthenticationOrder,
    FollowOnOrder,
    Operation,
    PaymentOrder,
    ResultStatus,
    StatusQuery,
)
from adapters.declines import Decline, DeclineCode
from adapters.errors import NotProcessed, OutcomeUnknown
from adapters.sandbox.settings import SandboxSettings
from adapters.settings import Timeouts
from router.config import Config
from router.payments.context import Call, Caller, Deadline
from router.payments.steps import NO_HOOKS, Hooks, SimulatedCrash, Step, When
from router.routing.acquirers import Acquirer
from router.routing.breakers import AcquirerBreaker
from router.routing.health import AcquirerHealth
from router.routing.table import RoutingTable
from router.runtime import Runtime
from router.store.ids import Ids
from router.store.memory import MemoryStore
from router.store.protocol import StoreUnavailable
from router.telemetry.metrics import Metrics
from tests.helpers import ID_SECRET, make_config

APPROVED = AcquirerResult(ResultStatus.APPROVED, "ref", captured=True)


def declined(code: DeclineCode, raw: str | None = None) -> AcquirerResult:
    return AcquirerResult(ResultStatus.DECLINED, "ref", Decline(code, raw or code.value))


@dataclass(frozen=True)
class LoseAnswer:
    """Process the request, then lose the answer on the way back."""


@dataclass(frozen=True)
class Drop:
    """Cut the connection before anything is processed (the caller cannot tell)."""


@dataclass(frozen=True)
class LoseAnswerAndGoDown:
    """Process the request, lose the answer, and become unreachable."""


Behaviour = AcquirerResult | LoseAnswer | LoseAnswerAndGoDown | Drop | Exception


@dataclass
class ScriptedAdapter(Adapter):
    name: str
    script: dict[Operation, list[Behaviour]] = field(default_factory=dict)
    books: dict[str, tuple[Operation, str, AcquirerResult]] = field(default_factory=dict)
    calls: list[tuple[Operation, str]] = field(default_factory=list)
    #: unreachable: every call is refused before anything is processed
    down: bool = False
    kind = "sandbox"
    status_is_authoritative = True
    finds_creates = True

    def __post_init__(self) -> None:
        self.settings = SandboxSettings(base_url="http://127.0.0.1:9")
        self.timeouts = Timeouts(connect_s=0.1, read_s=0.1)
        self.base_url = "http://127.0.0.1:9"

    def then(self, operation: Operation, *behaviours: Behaviour) -> ScriptedAdapter:
        self.script.setdefault(operation, []).extend(behaviours)
        return self

    def charges(self) -> Counter[str]:
        """Money-moving creates per payment id (>1 is a double charge)."""
        return Counter(
            reference
            for operation, reference, result in self.books.values()
            if operation.creates and result.status is ResultStatus.APPROVED
        )

    async def _do(
        self, operation: Operation, key: str, reference: str, default: AcquirerResult
    ) -> AcquirerResult:
        self.calls.append((operation, key))
        await asyncio.sleep(0)
        if self.down:
            raise NotProcessed(self.name, "connect_failed")
        if key in self.books:
            return self.books[key][2]
        planned = self.script.get(operation) or []
        behaviour = planned.pop(0) if planned else default
        if isinstance(behaviour, Drop):
            raise OutcomeUnknown(self.name, "disconnected")
        if isinstance(behaviour, Exception):
            raise behaviour
        lost = isinstance(behaviour, LoseAnswer | LoseAnswerAndGoDown)
        result = default if lost or not isinstance(behaviour, AcquirerResult) else behaviour
        self.books[key] = (operation, reference, result)
        if isinstance(behaviour, LoseAnswerAndGoDown):
            self.down = True
        if lost:
            raise OutcomeUnknown(self.name, "read_timeout")
        return result

    async def _create(self, order: PaymentOrder) -> AcquirerResult:
        default = AcquirerResult(
            ResultStatus.APPROVED, f"ch_{order.payment_id}", captured=order.capture
        )
        return await self._do(order.operation, order.idempotency_key, order.payment_id, default)

    async def capture(self, order: FollowOnOrder) -> AcquirerResult:
        default = AcquirerResult(ResultStatus.APPROVED, f"cap_{order.payment_id}")
        return await self._do(Operation.CAPTURE, order.idempotency_key, order.payment_id, default)

    async def void(self, order: FollowOnOrder) -> AcquirerResult:
        default = AcquirerResult(ResultStatus.APPROVED, f"void_{order.payment_id}")
        return await self._do(Operation.VOID, order.idempotency_key, order.payment_id, default)

    async def refund(self, order: FollowOnOrder) -> AcquirerResult:
        default = AcquirerResult(ResultStatus.APPROVED, f"rf_{order.refund_id}")
        reference = order.refund_id or order.payment_id
        return await self._do(Operation.REFUND, order.idempotency_key, reference, default)

    async def authenticate(self, order: AuthenticationOrder) -> AcquirerResult:
        raise NotImplementedError

    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        if self.down:
            raise NotProcessed(self.name, "connect_failed")
        found = self.books.get(query.idempotency_key)
        return found[2] if found else None

    async def find(self, query: StatusQuery) -> AcquirerResult | None:
        return await self.status(query)

    async def health(self) -> None:
        return None


class CrashAt:
    """Hooks that kill the owner at one step (once)."""

    def __init__(self, operation: Operation, step: Step, when: When) -> None:
        self.target = (operation, step, when)
        self.fired = False

    def at(self, operation: Operation, step: Step, when: When) -> None:
        if not self.fired and (operation, step, when) == self.target:
            self.fired = True
            raise SimulatedCrash(f"{operation} {when} {step}")


def runtime(
    adapters: Mapping[str, ScriptedAdapter],
    *,
    store: MemoryStore | None = None,
    hooks: Hooks = NO_HOOKS,
    config: Config | None = None,
    **sections: Any,
) -> Runtime:
    """A Runtime over scripted acquirers (the memory store unless one is given)."""
    defaults: dict[str, Any] = {
        "payments": {"lease_s": 1, "deadline_s": 5, "same_acquirer_replays": 2},
        "reconciler": {"not_found_grace_s": 0},
    }
    for name, section in sections.items():
        defaults[name] = {**defaults.get(name, {}), **section}
    config = config or make_config({name: "http://127.0.0.1:9" for name in adapters}, **defaults)
    metrics = Metrics()
    acquirers = {
        name: Acquirer(
            name=name,
            kind="sandbox",
            breaker=AcquirerBreaker(name, fail_max=1000),
            health=AcquirerHealth(),
            priority=index,
            adapter=adapter,
            metrics=metrics,
        )
        for index, (name, adapter) in enumerate(adapters.items())
    }
    the_store = store or MemoryStore()
    return Runtime(
        config=config,
        store=the_store,
        outbox=the_store,
        acquirers=acquirers,
        routing=RoutingTable(config.routing, acquirers),
        ids=Ids(ID_SECRET, epoch_ms=config.store.ttl_s * 1000),
        metrics=metrics,
        hooks=hooks,
    )


def call(rt: Runtime, key: str, caller: str = "demo") -> Call:
    return Call(rt, Caller(caller), key, Deadline(rt.config.payments.deadline_s))


class Clock:
    """Milliseconds for a MemoryStore, moved on by the test instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class CountingStore(MemoryStore):
    """Counts the atomic steps (what would be Redis round trips)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps: Counter[str] = Counter()
        self.fail_commits = 0

    async def claim(self, request: Any) -> Any:
        self.steps["claim"] += 1
        return await super().claim(request)

    async def commit(self, commit: Any) -> Any:
        self.steps["commit"] += 1
        if self.fail_commits:
            self.fail_commits -= 1
            raise StoreUnavailable("redis: ConnectionError: the store went away")
        return await super().commit(commit)
