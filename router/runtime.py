"""Everything one request needs, in one object the handlers pass along.

A config reload builds a new Runtime and swaps it into the holder in one
assignment; a request takes ``holder.current`` once when it starts and keeps
that object to the end, so in-flight requests finish on the config they began
with.  Tests build a Runtime directly and call the orchestrator without HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.acquirers import Acquirer
from router.config import Config
from router.idempotency.protocol import Store
from router.routing import RoutingTable


@dataclass
class Runtime:
    config: Config
    store: Store
    acquirers: dict[str, Acquirer]
    routing: RoutingTable
    version: str = "initial"

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
