"""Every key the router writes, in one place (the memory store uses the same names).

Keys are spread over ``SHARDS`` hash tags (``{s00}`` .. ``{s63}``).  Everything
one payment touches -- its idempotency records, the payment and its refunds,
the outbox entries its changes produce, its reconciliation entry and its
webhook dedupe markers -- shares the payment's tag, so each atomic step is a
single-slot script and the same code runs on Redis Cluster.

A resource id carries its shard in its first two hex digits
(``pay_3f...``); a refund or an operation on a payment copies the payment's,
so any id leads to its keys without a lookup.  A create's idempotency record
is placed by the hash of (tenant, key), which also gives the new payment id
its first two digits.
"""

from __future__ import annotations

import enum
import zlib

PREFIX = "pr"
SHARDS = 64  # divides 256, so two hex digits spread evenly


class DocKind(enum.StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


_HEX = frozenset("0123456789abcdef")


def shard_of_hex(hex_digits: str) -> int:
    return int(hex_digits[:2], 16) % SHARDS


def shard_of(resource_id: str) -> int:
    """``pay_3f0a...`` -> shard of 0x3f.  An id we never minted (a reference
    in a webhook, say) still gets a shard, where nothing of ours will be."""
    digits = resource_id.partition("_")[2][:2]
    if len(digits) == 2 and set(digits) <= _HEX:
        return shard_of_hex(digits)
    return zlib.crc32(resource_id.encode()) % SHARDS


def tag(shard: int) -> str:
    return f"{{s{shard:02d}}}"


def idem(shard: int, scope: str) -> str:
    """An idempotency record (hash: fp, rid, owner, lease, resp)."""
    return f"{PREFIX}:{tag(shard)}:idem:{scope}"


def doc(kind: DocKind, resource_id: str) -> str:
    """A payment or refund (hash: v = version, d = JSON document)."""
    return f"{PREFIX}:{tag(shard_of(resource_id))}:{kind}:{resource_id}"


def outbox(shard: int) -> str:
    """The shard's transactional outbox: one stream entry per record version."""
    return f"{PREFIX}:{tag(shard)}:outbox"


def unresolved(shard: int) -> str:
    """Sorted set of ``payment:<id>`` / ``refund:<id>`` scored by the next check time."""
    return f"{PREFIX}:{tag(shard)}:unresolved"


def seen(shard: int, digest: str) -> str:
    """An inbound webhook event already applied (dedupe marker)."""
    return f"{PREFIX}:{tag(shard)}:seen:{digest}"


def placeholder(shard: int) -> str:
    """A key that is never written, passed where a script takes an optional key
    (every key of a Cluster script must be in the script's slot)."""
    return f"{PREFIX}:{tag(shard)}:none"


#: outbound webhook deliveries: the stream, the retry schedule and the dead
#: letters share one hash tag so the retry mover is a single-slot script
WEBHOOK_STREAM = f"{PREFIX}:{{webhooks}}:stream"
WEBHOOK_RETRY = f"{PREFIX}:{{webhooks}}:retry"
WEBHOOK_DEAD = f"{PREFIX}:{{webhooks}}:dead"

#: the replication id the fleet last saw, and until when a detected store
#: failover makes new records suspect (see store.redis.watch)
INCARNATION = f"{PREFIX}:store:incarnation"
SUSPECT_UNTIL = f"{PREFIX}:store:suspect_until"

#: fleet-wide operator state (a hash: ``drained:<acquirer>`` fields and the
#: reload ``generation``), the set of instances, and each instance's report;
#: one hash tag, so the same commands run on Cluster
FLEET_STATE = f"{PREFIX}:{{fleet}}:state"
FLEET_INSTANCES = f"{PREFIX}:{{fleet}}:instances"
#: the operator's intent outlives any instance, but not forever: a drain
#: nobody touched for this long is forgotten (every change renews it)
FLEET_STATE_TTL_MS = 30 * 86_400_000


def fleet_instance(instance: str) -> str:
    """One instance's report of what it applied (expires unless renewed)."""
    return f"{PREFIX}:{{fleet}}:instance:{instance}"
