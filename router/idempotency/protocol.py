"""The store contract shared by the memory and Redis stores.

Claim and complete are single atomic steps owned by an *owner token*: only the
request that holds the lease may journal attempts or complete the record, and
a claim repeated by the same owner (a retry after a lost reply) is recognised
as ours rather than mistaken for a concurrent request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from router.records import Attempt, IdemRecord, PaymentRecord, RefundRecord, StoredResponse


@dataclass(frozen=True, slots=True)
class Claimed:
    record: IdemRecord
    taken_over: bool  # a previous owner's lease expired: its journal must be resolved first


@dataclass(frozen=True, slots=True)
class Replay:
    response: StoredResponse


@dataclass(frozen=True, slots=True)
class Busy:
    retry_after_ms: int


@dataclass(frozen=True, slots=True)
class Mismatch:
    pass


ClaimOutcome = Claimed | Replay | Busy | Mismatch


class StoreUnavailable(Exception):
    """The store cannot be reached: fail closed, send nothing to an acquirer."""


class LeaseLost(Exception):
    """Another owner holds the record now; this request must not act further."""


class VersionConflict(Exception):
    """A compare-and-set lost a race; re-read and try again."""


class AlreadyExists(Exception):
    pass


class Store(Protocol):
    ttl_ms: int

    async def claim(
        self, scope: str, fingerprint: str, owner: str, lease_ms: int, resource_id: str
    ) -> ClaimOutcome: ...

    async def write_attempt(self, scope: str, owner: str, attempt: Attempt, lease_ms: int) -> int:
        """Append ahead of the acquirer call (and extend the lease); returns its index."""
        ...

    async def settle_attempt(
        self, scope: str, owner: str, index: int, attempt: Attempt
    ) -> None: ...

    async def complete(
        self,
        scope: str,
        owner: str,
        response: StoredResponse,
        settle: tuple[int, Attempt] | None = None,
    ) -> None:
        """Store the response (and settle one journal line in the same step)."""
        ...

    async def release(
        self, scope: str, owner: str, settle: tuple[int, Attempt] | None = None
    ) -> None:
        """End our lease now (nothing is in flight); the record, its resource id
        and journal stay, so a retry with the same key continues where we stopped."""
        ...

    async def extend_lease(self, scope: str, owner: str, lease_ms: int) -> bool:
        """Heartbeat: push our lease to now + lease_ms; False if no longer ours."""
        ...

    async def get_idem(self, scope: str) -> IdemRecord | None: ...

    async def create_payment(self, payment: PaymentRecord) -> None: ...

    async def get_payment(self, payment_id: str) -> PaymentRecord | None: ...

    async def replace_payment(self, payment: PaymentRecord, expected_version: int) -> None:
        """Write ``payment`` (already at expected_version + 1) if the stored one is
        still at ``expected_version``; VersionConflict otherwise."""
        ...

    async def create_refund(self, refund: RefundRecord) -> None: ...

    async def get_refund(self, refund_id: str) -> RefundRecord | None: ...

    async def replace_refund(self, refund: RefundRecord, expected_version: int) -> None: ...

    async def event_seen(self, acquirer: str, event_id: str) -> bool: ...

    async def remember_event(self, acquirer: str, event_id: str) -> None: ...

    async def mark_unresolved(self, ref: str, due_ms: int) -> None: ...

    async def clear_unresolved(self, ref: str) -> None: ...

    async def due_unresolved(self, now_ms: int, limit: int) -> list[str]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


R = TypeVar("R", PaymentRecord, RefundRecord)


Observer = Callable[[R, R], Awaitable[None]]


async def _mutate(
    get: Callable[[str], Awaitable[R | None]],
    replace: Callable[[R, int], Awaitable[None]],
    record_id: str,
    change: Callable[[R], R | None],
    observer: Observer[R] | None = None,
    current: R | None = None,
) -> R:
    """Optimistic read-modify-write.  ``change`` gets a private copy and returns
    the new record, or None to leave it as it is; it may raise to refuse.
    ``observer(before, after)`` runs once a change was written.  A ``current``
    record the caller already holds saves the first read; if it is stale the
    compare-and-set fails and the loop reads the real one."""
    while True:
        if current is None:
            current = await get(record_id)
        if current is None:
            raise KeyError(record_id)
        updated = change(current.model_copy(deep=True))
        if updated is None:
            return current
        updated.version = current.version + 1
        try:
            await replace(updated, current.version)
        except VersionConflict:
            current = None
            continue
        if observer is not None:
            await observer(current, updated)
        return updated


async def mutate_payment(
    store: Store,
    payment_id: str,
    change: Callable[[PaymentRecord], PaymentRecord | None],
    observer: Observer[PaymentRecord] | None = None,
    current: PaymentRecord | None = None,
) -> PaymentRecord:
    return await _mutate(
        store.get_payment, store.replace_payment, payment_id, change, observer, current
    )


async def mutate_refund(
    store: Store,
    refund_id: str,
    change: Callable[[RefundRecord], RefundRecord | None],
    observer: Observer[RefundRecord] | None = None,
) -> RefundRecord:
    return await _mutate(store.get_refund, store.replace_refund, refund_id, change, observer)
