"""Kill the owner right before and right after every store step and every
acquirer call of create, capture, void and refund; retry through another
instance; the answer and the records must equal the acquirer's books.

In-process (memory store, a clock moved past the lease instead of waiting);
tests/integration/test_crash_points.py runs the same matrix on real Redis and
sandbox processes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from adapters.base import Operation
from adapters.errors import NotProcessed
from router.ops.reconciler import reconcile_once
from router.payments.context import ApiResult
from router.payments.create import create_payment
from router.payments.follow_on import capture_payment, void_payment
from router.payments.models import CreatePayment, CreateRefund
from router.payments.records import now_ms
from router.payments.refunds import refund_payment
from router.payments.states import PaymentState
from router.payments.steps import SimulatedCrash, Step, When
from router.runtime import Runtime
from router.store.keys import shard_of
from router.store.memory import MemoryStore
from tests.helpers import eventually
from tests.payments.harness import Clock, CountingStore, CrashAt, ScriptedAdapter, call, runtime

SALE = CreatePayment(amount=1000, currency="EUR", payment_method="tok_visa")
AUTHORIZE = CreatePayment(amount=1000, currency="EUR", payment_method="tok_visa", capture=False)


@dataclass(frozen=True)
class Scenario:
    name: str
    operation: Operation
    steps: tuple[Step, ...]  # the steps this scenario goes through
    expect: tuple[int, str]  # the final answer: status, payment or refund status


SCENARIOS = (
    Scenario("sale", Operation.SALE, (Step.CLAIM, Step.CALL, Step.SETTLE), (201, "captured")),
    Scenario(
        "sale-after-failover",
        Operation.SALE,
        (Step.CLAIM, Step.JOURNAL, Step.CALL, Step.SETTLE),
        (201, "captured"),
    ),
    Scenario(
        "capture",
        Operation.CAPTURE,
        (Step.CLAIM, Step.JOURNAL, Step.CALL, Step.SETTLE),
        (200, "captured"),
    ),
    Scenario(
        "void", Operation.VOID, (Step.CLAIM, Step.JOURNAL, Step.CALL, Step.SETTLE), (200, "voided")
    ),
    Scenario(
        "refund",
        Operation.REFUND,
        (Step.CLAIM, Step.JOURNAL, Step.CALL, Step.SETTLE),
        (201, "succeeded"),
    ),
)

CASES = [
    pytest.param(scenario, step, when, id=f"{scenario.name}-{when}-{step}")
    for scenario in SCENARIOS
    for step in scenario.steps
    for when in When
]


async def _prepare(rt: Runtime, scenario: Scenario) -> str:
    """The payment the operation runs on (none for a create)."""
    if scenario.operation in (Operation.CAPTURE, Operation.VOID):
        result = await create_payment(call(rt, "setup"), AUTHORIZE)
        return str(result.body["id"])
    if scenario.operation is Operation.REFUND:
        result = await create_payment(call(rt, "setup"), SALE)
        return str(result.body["id"])
    return ""


def _operation(rt: Runtime, scenario: Scenario, payment_id: str) -> Awaitable[ApiResult]:
    runs: dict[Operation, Callable[[], Awaitable[ApiResult]]] = {
        Operation.SALE: lambda: create_payment(call(rt, "op"), SALE),
        Operation.CAPTURE: lambda: capture_payment(call(rt, "op"), payment_id, None),
        Operation.VOID: lambda: void_payment(call(rt, "op"), payment_id),
        Operation.REFUND: lambda: refund_payment(call(rt, "op"), payment_id, CreateRefund()),
    }
    return runs[scenario.operation]()


@pytest.mark.parametrize(("scenario", "step", "when"), CASES)
async def test_an_owner_killed_at_any_step_is_finished_by_the_next_one(
    scenario: Scenario, step: Step, when: When
) -> None:
    a, b = ScriptedAdapter("a"), ScriptedAdapter("b")
    if scenario.name == "sale-after-failover":
        a.then(Operation.SALE, NotProcessed("a", "connect_failed"))
    clock = Clock()
    store = CountingStore(clock=clock)
    healthy = runtime({"a": a, "b": b}, store=store)
    payment_id = await _prepare(healthy, scenario)
    crash = CrashAt(scenario.operation, step, when)
    dying = runtime({"a": a, "b": b}, store=store, hooks=crash)

    with pytest.raises(SimulatedCrash):
        await _operation(dying, scenario, payment_id)
    assert crash.fired

    clock.advance(2)  # the dead owner's lease runs out
    result = await _operation(healthy, scenario, payment_id)
    again = await _operation(healthy, scenario, payment_id)

    status, state = scenario.expect
    assert (result.status, result.body["status"]) == (status, state), result.body
    assert (again.status, again.body["status"], again.replayed) == (status, state, True)
    books = {**a.books, **b.books}
    done = [ref for op, ref, _ in books.values() if op is scenario.operation]
    assert len(done) == 1  # the operation happened exactly once at the acquirers
    if scenario.operation.creates:
        assert a.charges() + b.charges() == {result.body["id"]: 1}
    payment = await store.get_payment(payment_id or str(result.body["id"]))
    assert payment is not None
    assert payment.open_attempt() is None
    assert payment.open_operation() is None


#: the steps of a create after which its record exists (a crash before the
#: claim leaves nothing behind), and whether the money had moved by then
ORPHANS = [
    pytest.param(scenario, step, when, charged, id=f"{scenario.name}-{when}-{step}")
    for scenario in SCENARIOS
    if scenario.operation.creates
    for step in scenario.steps
    for when in When
    if (step, when) != (Step.CLAIM, When.BEFORE)
    for charged in [step is Step.SETTLE or (step, when) == (Step.CALL, When.AFTER)]
]


@pytest.mark.parametrize(("scenario", "step", "when", "charged"), ORPHANS)
async def test_an_owner_killed_with_nobody_retrying_is_settled_by_the_reconciler_if_money_moved(
    scenario: Scenario, step: Step, when: When, charged: bool
) -> None:
    """Money that moved is found without a retry; a payment the acquirer never
    got stays pending and watched (its owner may only be frozen, and send
    yet), for a retry to resume where it was sent."""
    a, b = ScriptedAdapter("a"), ScriptedAdapter("b")
    if scenario.name == "sale-after-failover":
        a.then(Operation.SALE, NotProcessed("a", "connect_failed"))
    store = MemoryStore()
    quick = {"deadline_s": 0.2, "lease_s": 0.2}
    crash = CrashAt(scenario.operation, step, when)
    dying = runtime({"a": a, "b": b}, store=store, hooks=crash, payments=quick)
    survivor = runtime({"a": a, "b": b}, store=store, payments=quick)
    orphan = call(dying, "op")
    payment_id = dying.ids.payment_id(orphan.tenant, "op", dying.ids.epoch(now_ms()))

    with pytest.raises(SimulatedCrash):
        await create_payment(orphan, SALE)
    assert crash.fired
    first_look = store.scheduled(shard_of(payment_id)).get(f"payment:{payment_id}")

    async def after_a_pass() -> tuple[PaymentState | None, int | None]:
        await reconcile_once(survivor)
        payment = await store.get_payment(payment_id)
        looked = store.scheduled(shard_of(payment_id)).get(f"payment:{payment_id}")
        return (payment.state if payment else None), looked

    def settled_or_looked_at(seen: tuple[PaymentState | None, int | None]) -> bool:
        state, looked = seen
        return state is PaymentState.CAPTURED if charged else looked != first_look

    state, looked = await eventually(after_a_pass, settled_or_looked_at, seconds=5)
    if charged:
        assert (state, looked) == (PaymentState.CAPTURED, None)
        assert a.charges() + b.charges() == {payment_id: 1}
    else:
        assert state is PaymentState.PENDING  # watched, not given up
        assert looked is not None
        assert looked != first_look
        assert a.charges() + b.charges() == {}

        async def retry() -> ApiResult:
            return await create_payment(call(survivor, "op"), SALE)

        retried = await eventually(retry, lambda r: r.status != 409, seconds=5)  # lease over
        assert (retried.status, retried.body["id"], retried.body["status"]) == (
            201,
            payment_id,
            "captured",
        )
        assert a.charges() + b.charges() == {payment_id: 1}
