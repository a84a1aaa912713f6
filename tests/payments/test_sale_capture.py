"""A sale the acquirer answered "authorised" (Adyen Authorised, Checkout.com
Authorized) is not captured yet: it waits for the capture confirmation, and
a capture that fails afterwards is surfaced as such."""

from __future__ import annotations

from adapters.base import AcquirerResult, Operation, ResultStatus
from adapters.connector import AcquirerEvent, Target
from router.payments.create import create_payment
from router.payments.follow_on import void_payment
from router.payments.models import CreatePayment
from router.payments.reads import get_payment
from router.runtime import Runtime
from router.webhooks.inbound import apply_event
from tests.payments.harness import ScriptedAdapter, call, runtime

SALE = CreatePayment(amount=1000, currency="EUR", payment_method="tok_visa")
AUTHORISED = AcquirerResult(ResultStatus.APPROVED, "PSP1", captured=False)


async def _pending_capture(rt: Runtime) -> str:
    result = await create_payment(call(rt, "sale-1"), SALE)
    assert (result.status, result.body["status"], result.body["captured_amount"]) == (
        201,
        "capture_pending",
        0,
    )
    return str(result.body["id"])


def _capture_event(payment_id: str, status: ResultStatus, n: int = 1) -> AcquirerEvent:
    return AcquirerEvent(
        event_id=f"evt-{n}",
        target=Target.PAYMENT,
        reference=payment_id,
        operation=Operation.CAPTURE,
        result=AcquirerResult(status, "PSP1"),
        payment_reference="PSP1",
    )


async def test_an_authorised_sale_is_captured_only_on_the_capture_confirmation() -> None:
    rt = runtime({"a": ScriptedAdapter("a").then(Operation.SALE, AUTHORISED)})
    pid = await _pending_capture(rt)
    assert await apply_event(rt, "a", _capture_event(pid, ResultStatus.APPROVED))
    view = await get_payment(rt, call(rt, "read").tenant, pid)
    assert (view.status, view.captured_amount) == ("captured", 1000)


async def test_a_capture_that_fails_after_authorisation_is_capture_failed_and_voidable() -> None:
    rt = runtime({"a": ScriptedAdapter("a").then(Operation.SALE, AUTHORISED)})
    pid = await _pending_capture(rt)
    assert await apply_event(rt, "a", _capture_event(pid, ResultStatus.DECLINED))
    view = await get_payment(rt, call(rt, "read").tenant, pid)
    assert (view.status, view.captured_amount) == ("capture_failed", 0)
    voided = await void_payment(call(rt, "void-1"), pid)
    assert (voided.status, voided.body["status"]) == (200, "voided")
