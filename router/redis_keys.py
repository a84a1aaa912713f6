"""Every Redis key the router writes, in one place.

Each logical record lives under one hash tag (``{...}``), so every script
touches a single slot and the same code runs on Redis Cluster.
"""

from __future__ import annotations

import hashlib

PREFIX = "pr"


def idem(scope: str) -> str:
    """Idempotency record (hash: fp, rid, owner, lease, resp)."""
    return f"{PREFIX}:idem:{{{scope}}}"


def attempts(scope: str) -> str:
    """The attempt journal of one idempotency record (list of JSON lines)."""
    return f"{PREFIX}:idem:{{{scope}}}:attempts"


def payment(payment_id: str) -> str:
    return f"{PREFIX}:pay:{{{payment_id}}}"


def refund(refund_id: str) -> str:
    return f"{PREFIX}:refund:{{{refund_id}}}"


def event(acquirer: str, event_id: str) -> str:
    """An inbound webhook event already applied (dedupe marker)."""
    digest = hashlib.sha256(f"{acquirer}\x1f{event_id}".encode()).hexdigest()[:40]
    return f"{PREFIX}:event:{{{digest}}}"


#: outbound webhook deliveries: the stream, the retry schedule and the dead
#: letters share one hash tag so the retry mover is a single-slot script
WEBHOOK_STREAM = f"{PREFIX}:{{webhooks}}:stream"
WEBHOOK_RETRY = f"{PREFIX}:{{webhooks}}:retry"
WEBHOOK_DEAD = f"{PREFIX}:{{webhooks}}:dead"

#: sorted set of "payment:<id>" / "refund:<id>" scored by the next check time
UNRESOLVED = f"{PREFIX}:unresolved"
