"""Everything one request needs, in one object the payment flows are given.

A config reload builds a new Runtime and swaps it into the holder in one
assignment; a request takes ``holder.current`` once when it starts and keeps
that object to the end, so in-flight requests finish on the config they began
with.  Tests build a Runtime directly (see tests/payments) and call the
payment flows without HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from router.config import Config
from router.ledger.protocol import Ledger
from router.payments.steps import NO_HOOKS, Hooks
from router.payments.stranded import StrandedClaims
from router.routing.acquirers import Acquirer
from router.routing.table import RoutingTable
from router.store.ids import Ids
from router.store.protocol import Outbox, Store
from router.telemetry.metrics import Metrics
from router.telemetry.tracing import Tracing


@dataclass(frozen=True)
class Runtime:
    config: Config
    store: Store
    outbox: Outbox
    acquirers: Mapping[str, Acquirer]
    routing: RoutingTable
    ids: Ids
    metrics: Metrics = field(default_factory=Metrics)
    tracing: Tracing = field(default_factory=Tracing)
    hooks: Hooks = NO_HOOKS
    #: the system of record; None: records live store.record_ttl_s in the store only
    ledger: Ledger | None = None
    version: str = "initial"
    #: closing writes of claims the store could not take, retried in the background
    stranded: StrandedClaims = field(default_factory=StrandedClaims)

    @property
    def lease_ms(self) -> int:
        return int(self.config.payments.lease_s * 1000)


@dataclass
class RuntimeHolder:
    current: Runtime
    history: list[str] = field(default_factory=list)

    def swap(self, runtime: Runtime) -> Runtime:
        previous, self.current = self.current, runtime
        self.history.append(runtime.version)
        return previous
