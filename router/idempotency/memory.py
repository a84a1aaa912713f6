"""In-memory store for one process (the embedded demo and unit tests).

Same semantics as the Redis store: every method body runs without awaiting,
so on one event loop each is atomic.  Records are kept serialised, like in
Redis, so a caller can never mutate stored state by accident.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from router.idempotency.protocol import (
    AlreadyExists,
    Busy,
    Claimed,
    ClaimOutcome,
    LeaseLost,
    Mismatch,
    Replay,
    VersionConflict,
)
from router.records import (
    Attempt,
    IdemRecord,
    PaymentRecord,
    RefundRecord,
    StoredResponse,
    now_ms,
)

DEFAULT_TTL_MS = 24 * 3600 * 1000


@dataclass
class _Entry:
    doc: str
    expires_ms: int


class MemoryStore:
    def __init__(self, ttl_ms: int = DEFAULT_TTL_MS) -> None:
        self.ttl_ms = ttl_ms
        self._data: dict[str, _Entry] = {}
        self._expiry: list[tuple[int, str]] = []
        self._unresolved: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    def _get(self, key: str) -> str | None:
        self._purge()
        entry = self._data.get(key)
        return entry.doc if entry is not None else None

    def _put(self, key: str, doc: str) -> None:
        expires = now_ms() + self.ttl_ms
        self._data[key] = _Entry(doc, expires)
        heapq.heappush(self._expiry, (expires, key))

    def _purge(self) -> None:
        now = now_ms()
        while self._expiry and self._expiry[0][0] <= now:
            _expires, key = heapq.heappop(self._expiry)
            entry = self._data.get(key)
            if entry is not None and entry.expires_ms <= now:
                del self._data[key]

    def _idem(self, scope: str) -> IdemRecord | None:
        doc = self._get("idem:" + scope)
        return IdemRecord.model_validate_json(doc) if doc is not None else None

    def _owned(self, scope: str, owner: str) -> IdemRecord:
        record = self._idem(scope)
        if record is None or record.done or record.owner != owner:
            raise LeaseLost(scope)
        return record

    def _save_idem(self, scope: str, record: IdemRecord) -> None:
        self._put("idem:" + scope, record.model_dump_json())

    # --------------------------------------------------------------- idempotency
    async def claim(
        self, scope: str, fingerprint: str, owner: str, lease_ms: int, resource_id: str
    ) -> ClaimOutcome:
        now = now_ms()
        record = self._idem(scope)
        if record is None:
            record = IdemRecord(
                fingerprint=fingerprint,
                resource_id=resource_id,
                owner=owner,
                lease_until_ms=now + lease_ms,
            )
            self._save_idem(scope, record)
            return Claimed(record, taken_over=False)
        if record.fingerprint != fingerprint:
            return Mismatch()
        if record.response is not None:
            return Replay(record.response)
        if record.owner == owner:
            return Claimed(record, taken_over=False)
        if record.lease_until_ms > now:
            return Busy(record.lease_until_ms - now)
        record.owner, record.lease_until_ms = owner, now + lease_ms
        self._save_idem(scope, record)
        return Claimed(record, taken_over=True)

    async def write_attempt(self, scope: str, owner: str, attempt: Attempt, lease_ms: int) -> int:
        record = self._owned(scope, owner)
        if not record.attempts or record.attempts[-1] != attempt:
            record.attempts.append(attempt)
        record.lease_until_ms = max(record.lease_until_ms, now_ms() + lease_ms)
        self._save_idem(scope, record)
        return len(record.attempts) - 1

    async def settle_attempt(self, scope: str, owner: str, index: int, attempt: Attempt) -> None:
        record = self._owned(scope, owner)
        record.attempts[index] = attempt
        self._save_idem(scope, record)

    async def complete(
        self,
        scope: str,
        owner: str,
        response: StoredResponse,
        settle: tuple[int, Attempt] | None = None,
    ) -> None:
        done = self._idem(scope)
        if done is not None and done.response == response:
            return  # completing again with the same answer is not a conflict
        record = self._owned(scope, owner)
        if settle is not None:
            record.attempts[settle[0]] = settle[1]
        record.response, record.owner, record.lease_until_ms = response, None, 0
        self._save_idem(scope, record)

    async def release(
        self, scope: str, owner: str, settle: tuple[int, Attempt] | None = None
    ) -> None:
        record = self._idem(scope)
        if record is not None and record.owner == owner and not record.done:
            if settle is not None:
                record.attempts[settle[0]] = settle[1]
            record.owner, record.lease_until_ms = None, 0
            self._save_idem(scope, record)

    async def extend_lease(self, scope: str, owner: str, lease_ms: int) -> bool:
        record = self._idem(scope)
        if record is None or record.done or record.owner != owner:
            return False
        record.lease_until_ms = max(record.lease_until_ms, now_ms() + lease_ms)
        self._save_idem(scope, record)
        return True

    async def get_idem(self, scope: str) -> IdemRecord | None:
        return self._idem(scope)

    # ------------------------------------------------------------------ records
    async def create_payment(self, payment: PaymentRecord) -> None:
        self._create("pay:" + payment.id, payment.model_dump_json())

    async def get_payment(self, payment_id: str) -> PaymentRecord | None:
        doc = self._get("pay:" + payment_id)
        return PaymentRecord.model_validate_json(doc) if doc is not None else None

    async def replace_payment(self, payment: PaymentRecord, expected_version: int) -> None:
        current = await self.get_payment(payment.id)
        self._replace("pay:" + payment.id, current, payment.model_dump_json(), expected_version)

    async def create_refund(self, refund: RefundRecord) -> None:
        self._create("refund:" + refund.id, refund.model_dump_json())

    async def get_refund(self, refund_id: str) -> RefundRecord | None:
        doc = self._get("refund:" + refund_id)
        return RefundRecord.model_validate_json(doc) if doc is not None else None

    async def replace_refund(self, refund: RefundRecord, expected_version: int) -> None:
        current = await self.get_refund(refund.id)
        self._replace("refund:" + refund.id, current, refund.model_dump_json(), expected_version)

    def _create(self, key: str, doc: str) -> None:
        if self._get(key) is not None:
            raise AlreadyExists(key)
        self._put(key, doc)

    def _replace(
        self,
        key: str,
        current: PaymentRecord | RefundRecord | None,
        doc: str,
        expected_version: int,
    ) -> None:
        if current is None or current.version != expected_version:
            raise VersionConflict(key)
        self._put(key, doc)

    # ------------------------------------------------------------------ events
    async def event_seen(self, acquirer: str, event_id: str) -> bool:
        return self._get(f"event:{acquirer}:{event_id}") is not None

    async def remember_event(self, acquirer: str, event_id: str) -> None:
        self._put(f"event:{acquirer}:{event_id}", "1")

    # --------------------------------------------------------------- unresolved
    async def mark_unresolved(self, ref: str, due_ms: int) -> None:
        self._unresolved[ref] = due_ms

    async def clear_unresolved(self, ref: str) -> None:
        self._unresolved.pop(ref, None)

    async def due_unresolved(self, now_ms: int, limit: int) -> list[str]:
        due = sorted((due, ref) for ref, due in self._unresolved.items() if due <= now_ms)
        return [ref for _, ref in due[:limit]]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
