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
#: every shard, in order (what one instance alone is responsible for)
ALL_SHARDS = tuple(range(SHARDS))


class DocKind(enum.StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


#: the shard of every two-digit prefix a minted id or a scope can start with
#: (lower-case hex, as ids are minted); looked up, not parsed, on every key
_SHARD_OF_DIGITS = {f"{i:02x}": i % SHARDS for i in range(256)}
#: each shard's key root with its hash tag, formatted once instead of per key
_ROOTS = tuple(f"{PREFIX}:{{s{shard:02d}}}" for shard in range(SHARDS))


def shard_of_hex(hex_digits: str) -> int:
    found = _SHARD_OF_DIGITS.get(hex_digits[:2])
    return found if found is not None else int(hex_digits[:2], 16) % SHARDS


def shard_of(resource_id: str) -> int:
    """``pay_3f0a...`` -> shard of 0x3f.  An id we never minted (a reference
    in a webhook, say) still gets a shard, where nothing of ours will be."""
    found = _SHARD_OF_DIGITS.get(resource_id.partition("_")[2][:2])
    if found is not None:
        return found
    return zlib.crc32(resource_id.encode()) % SHARDS


def idem(shard: int, scope: str) -> str:
    """An idempotency record (hash: fp, rid, owner, lease, resp)."""
    return f"{_ROOTS[shard]}:idem:{scope}"


def doc(kind: DocKind, resource_id: str) -> str:
    """A payment or refund (hash: v = version, d = JSON document)."""
    return f"{_ROOTS[shard_of(resource_id)]}:{kind}:{resource_id}"


def outbox(shard: int) -> str:
    """The shard's transactional outbox: one stream entry per record version."""
    return f"{_ROOTS[shard]}:outbox"


def unresolved(shard: int) -> str:
    """Sorted set of ``payment:<id>`` / ``refund:<id>`` scored by the next check time."""
    return f"{_ROOTS[shard]}:unresolved"


def seen(shard: int, digest: str) -> str:
    """An inbound webhook event already applied (dedupe marker)."""
    return f"{_ROOTS[shard]}:seen:{digest}"


def placeholder(shard: int) -> str:
    """A key that is never written, passed where a script takes an optional key
    (every key of a Cluster script must be in the script's slot)."""
    return f"{_ROOTS[shard]}:none"


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
#: the reconcilers that made a pass lately, scored by when (ms): who shares
#: the sweep of the shards (see ops.reconciler); every pass renews it for
#: twice the window a member counts as alive, after which it names nobody
RECONCILERS = f"{PREFIX}:{{fleet}}:reconcilers"


def fleet_instance(instance: str) -> str:
    """One instance's report of what it applied (expires unless renewed)."""
    return f"{PREFIX}:{{fleet}}:instance:{instance}"
