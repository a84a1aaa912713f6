"""Everything one request needs, in one object the handlers pass along.

Tests build a Runtime directly and call the orchestrator without HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.acquirers import Acquirer
from router.config import Config
from router.idempotency.protocol import Store


@dataclass
class Runtime:
    config: Config
    store: Store
    acquirers: dict[str, Acquirer]

    def candidates(self, preferred: str | None = None) -> list[str]:
        """Acquirers to try for a new payment, best first."""
        order = [n for n in self.config.routing.default if n in self.acquirers]
        if preferred in order:
            order.remove(preferred)
            order.insert(0, preferred)
        return order

    @property
    def lease_ms(self) -> int:
        return int(self.config.payments.lease_s * 1000)
