"""Ids, acquirer keys and request fingerprints, derived instead of drawn.

A store failover can lose the last writes a primary acknowledged.  If the
record of a payment is lost and the caller retries, the retry must name the
same payment and send the acquirer the same idempotency key, so the
acquirer's own idempotency absorbs it.  So every id is a keyed hash of
(tenant, Idempotency-Key, operation): any instance, any time, derives the
same one, and without the server secret nobody can guess another tenant's.

An Idempotency-Key names one operation for the idempotency window
(``store.ttl_s``), as at Stripe: a key reused after that window is a new
operation.  The derivation includes the window's *epoch* (time divided by the
window), so a reuse gets a new id, while a retry of a record lost in a
failover, which comes within seconds, gets the same one (the failover check
also tries the neighbouring epochs, so a retry across a boundary is found).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re

import orjson

from router.store.keys import shard_of_hex

_SEP = "\x1f"
#: an id must never look like a card number: no 13 decimal digits in a row
_DIGIT_RUN = re.compile(r"[0-9]{13}")
#: every id this module makes, as the API publishes it (a lookahead keeps out
#: the digit runs no id has, so a fuzzer does not take them for valid ids)
ID_PATTERN = r"^[a-z]{2,4}_(?![0-9a-f]*[0-9]{13})[0-9a-f]{24}$"


class Ids:
    def __init__(self, secret: str, epoch_ms: int) -> None:
        self._key = secret.encode()
        self.epoch_ms = epoch_ms

    def _mac(self, *parts: str) -> str:
        return hmac.digest(self._key, _SEP.join(parts).encode(), "sha256").hex()

    def _id(self, prefix: str, shard_hex: str, *parts: str) -> str:
        """``prefix_`` + 24 hex digits, the first two chosen by the caller.  A
        digest whose digits would run 13 long (about one in fifty) is drawn
        again with a counter, so no id is ever taken for a card number; the
        choice is still a function of the inputs alone."""
        for salt in itertools.count():
            digest = self._mac(*parts, str(salt)) if salt else self._mac(*parts)
            candidate = f"{shard_hex[:2]}{digest[:22]}"
            if not _DIGIT_RUN.search(candidate):
                return f"{prefix}_{candidate}"
        raise AssertionError("unreachable")

    def epoch(self, now_ms: int) -> int:
        return now_ms // self.epoch_ms

    @staticmethod
    def scope(tenant: str, idempotency_key: str, parent: str = "") -> str:
        """Where an idempotency record lives: per tenant, and per payment for
        captures, voids and refunds (``parent``)."""
        material = _SEP.join((tenant, idempotency_key, parent)).encode()
        return hashlib.sha256(material).hexdigest()[:40]

    @staticmethod
    def shard_of_scope(scope: str) -> int:
        return shard_of_hex(scope)

    def payment_id(
        self, tenant: str, idempotency_key: str, epoch: int, scope: str | None = None
    ) -> str:
        """``scope``: the key's :meth:`scope`, when the caller has it already."""
        shard_hex = scope or self.scope(tenant, idempotency_key)
        return self._id("pay", shard_hex, "payment", tenant, idempotency_key, str(epoch))

    def child_id(
        self, prefix: str, tenant: str, idempotency_key: str, parent_id: str, epoch: int
    ) -> str:
        """A refund or an operation on ``parent_id``: same shard as the payment."""
        shard_hex = parent_id.partition("_")[2][:2]
        return self._id(prefix, shard_hex, prefix, tenant, idempotency_key, parent_id, str(epoch))

    def acquirer_key(self, resource_id: str, operation: str, acquirer: str) -> str:
        """The idempotency key an acquirer gets: 51 characters, within every
        acquirer's limit (Adyen: 64)."""
        return "pr_" + self._mac("acquirer-key", resource_id, operation, acquirer)[:48]

    def fingerprint(self, method: str, path: str, body: object) -> str:
        """Canonical (key order and whitespace do not matter) and keyed: a
        fingerprint of a body that holds a network token is no rainbow table."""
        canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
        return hmac.digest(self._key, canonical, "sha256").hex()
