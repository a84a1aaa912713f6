"""Payments whose record a store failover may have lost.

The store detects when it lost acknowledged writes (a failover to a replica
that lagged, a restart without them) and marks the next minutes suspect.  A
new idempotency record then may be the second life of a lost one: the
caller's retry of a payment that was already sent.  Ids are derived, so the
retry names the same payment and sends the same acquirer key; an acquirer
that gets the key again answers from its own idempotency.  What must not
happen is that routing now picks *another* acquirer.  So before a suspect
payment goes anywhere, every acquirer of its mode that can look a create up
is asked for it; one that knows it pins the payment there.  The system of
record is asked first: a payment drained to it before the loss is put back
into the store, and the retry resumes it where it is.

What stays possible (README: "Redis and exactly-once"): an acquirer that
cannot look a create up (Adyen) is not asked, so a lost record whose payment
went there, retried within the window at another acquirer, is charged twice.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from adapters.base import StatusQuery
from adapters.errors import AcquirerError
from router.payments.context import Call
from router.payments.reads import load_payment
from router.payments.records import now_ms
from router.problems import Problem
from router.routing.acquirers import invoke
from router.routing.table import RoutePlan

if TYPE_CHECKING:
    from router.payments.create import CreateIntent

log = logging.getLogger(__name__)


async def recover_lost_payment(
    call: Call, intent: CreateIntent, plan: RoutePlan
) -> tuple[str, RoutePlan]:
    """The payment id to use, and the plan: pinned to an acquirer that knows it."""
    rt = call.rt
    epoch = rt.ids.epoch(now_ms())
    ids = [
        rt.ids.payment_id(call.tenant, call.idempotency_key, e)
        for e in (epoch, epoch - 1, epoch + 1)
    ]
    for payment_id in ids:
        if await load_payment(rt, payment_id) is not None:
            return payment_id, plan  # the claim finds it (put back from the ledger if need be)
    operation = intent.operation
    for payment_id in ids:
        for name, acquirer in rt.acquirers.items():
            if acquirer.test_mode is call.caller.live or not acquirer.adapter.finds_creates:
                continue
            key = rt.ids.acquirer_key(payment_id, operation, name)
            query = StatusQuery(operation, payment_id, key)
            try:
                found = await invoke(
                    acquirer,
                    functools.partial(acquirer.adapter.find, query),
                    call.deadline.remaining(),
                )
            except AcquirerError as exc:
                raise Problem(
                    503,
                    "failover_check_incomplete",
                    "the store recently failed over and an acquirer that may hold this "
                    f"payment could not be asked ({exc.reason}); nothing was charged. Retry "
                    "with the same Idempotency-Key",
                    retryable=True,
                    headers={"Retry-After": "2"},
                ) from exc
            if found is not None:
                log.warning(
                    "payment %s was sent to %s before a store failover lost its record",
                    payment_id,
                    name,
                )
                note = f"{name} knows this payment from before a store failover: pinned there"
                return payment_id, RoutePlan([name], "(recovered)", plan.balancer, [note])
    return ids[0], plan
