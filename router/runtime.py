"""Everything one request needs, in one object the handlers pass along.

A config reload builds a new Runtime and swaps it into the holder in one
assignment; a request takes ``holder.current`` once when it starts and keeps
that object to the end, so in-flight requests finish on the config they began
with.  Tests build a Runtime directly and call the orchestrator without HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from router.acquirers import Acquirer
from router.config import Config
from router.idempotency.protocol import Store, mutate_payment, mutate_refund
from router.metrics import Metrics
from router.records import PaymentRecord, RefundRecord
from router.routing import RoutingTable
from router.webhooks.outbound import Publisher


@dataclass
class Runtime:
    config: Config
    store: Store
    acquirers: dict[str, Acquirer]
    routing: RoutingTable
    version: str = "initial"
    publisher: Publisher | None = None
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def lease_ms(self) -> int:
        return int(self.config.payments.lease_s * 1000)

    async def update_payment(
        self,
        payment_id: str,
        change: Callable[[PaymentRecord], PaymentRecord | None],
        current: PaymentRecord | None = None,
    ) -> PaymentRecord:
        """Every payment change goes through here, so every state change is published."""
        observer = self.publisher.payment_changed if self.publisher else None
        return await mutate_payment(self.store, payment_id, change, observer, current)

    async def update_refund(
        self, refund_id: str, change: Callable[[RefundRecord], RefundRecord | None]
    ) -> RefundRecord:
        observer = self.publisher.refund_changed if self.publisher else None
        return await mutate_refund(self.store, refund_id, change, observer)


@dataclass
class RuntimeHolder:
    current: Runtime
    history: list[str] = field(default_factory=list)

    def swap(self, runtime: Runtime) -> Runtime:
        previous, self.current = self.current, runtime
        self.history.append(runtime.version)
        return previous
