"""A commit is one atomic change, so it happens at one moment: every record it
changes, and every event it queues, carries the same time.  The history of a
payment orders events by time and then by kind, so two stamps a millisecond
apart would show a refund's success before the payment it refunded."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from router.payments import journal
from router.payments.journal import Draft
from router.payments.records import PaymentRecord, Record, RefundRecord, Source
from router.payments.states import OperationState, PaymentState
from tests.payments.harness import ScriptedAdapter, runtime


async def test_every_record_of_one_commit_is_stamped_with_the_same_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = itertools.count(1_800_000_000_000)
    monkeypatch.setattr(journal, "now_ms", lambda: next(ticks))  # a clock that always moves
    rt = runtime({"sandbox-a": ScriptedAdapter("sandbox-a")})
    refund = RefundRecord(
        id="ref_0a" + "1" * 22,
        payment_id="pay_0a" + "2" * 22,
        tenant="demo",
        amount=250,
        currency="EUR",
        state=OperationState.PENDING,
        acquirer="sandbox-a",
    )
    payment = PaymentRecord(
        id=refund.payment_id,
        tenant="demo",
        state=PaymentState.CAPTURED,
        amount=1000,
        currency="EUR",
        capture=True,
    )

    async def reread() -> Sequence[Record | None]:
        raise AssertionError("nothing races this commit")

    draft = Draft(rt, [refund, payment], reread, docs=["", ""])  # both new: written fresh
    assert await draft.commit(Source.LIVE)

    entries = await rt.outbox.read("history", "c1", 10, 0)
    assert [(e.event.record_id, e.event.at_ms) for e in entries] == [
        (refund.id, refund.updated_ms),
        (payment.id, refund.updated_ms),
    ]
    assert payment.updated_ms == refund.updated_ms
