"""The system of record's contract, shared by the PostgreSQL and memory ledgers.

Errors::

    LedgerError
    ├── LedgerUnavailable      the database cannot be reached: retry later
    └── SchemaNotCurrent       migrations are pending: run ``payrouter db migrate``
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Protocol

from adapters.values import frozen
from router.payments.records import PaymentRecord, RefundRecord
from router.payments.states import PaymentState
from router.store.protocol import ChangeEvent


class LedgerError(Exception):
    pass


class LedgerUnavailable(LedgerError):
    """The database did not answer; nothing was written by the failed call."""


class SchemaNotCurrent(LedgerError):
    """The database schema lags behind this version of payrouter."""


@frozen
class Change:
    """One version of one record, as the outbox delivers it (``raw``: the
    record's JSON as stored, so it need not be serialized again)."""

    event: ChangeEvent
    record: PaymentRecord | RefundRecord
    raw: str | None = None

    @property
    def json(self) -> str:
        return self.raw if self.raw is not None else self.record.model_dump_json()


class MovementKind(enum.StrEnum):
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


@frozen
class Movement:
    """Money that moved (or was reserved) at an acquirer: one line for finance.

    ``key`` names the movement whatever version of the record showed it, so
    every version yields the same lines and applying them is idempotent;
    ``at_ms`` is the update time of the version that showed it, and the
    ledger keeps the earliest: the moment it happened."""

    key: str
    kind: MovementKind
    payment_id: str
    refund_id: str | None
    tenant: str
    livemode: bool
    amount: int
    currency: str
    acquirer: str
    acquirer_reference: str | None
    at_ms: int


@frozen
class HistoryEvent:
    record_kind: str  # payment | refund
    record_id: str
    version: int
    state: str
    previous_state: str | None
    source: str
    at_ms: int


#: a cursor is the last payment's creation time (hex milliseconds: decimal ones
#: would be 13 digits, which the card-number check refuses) and its id
CURSOR_PATTERN = r"^[0-9a-f]{1,12}\.[a-z]{2,4}_(?![0-9a-f]*[0-9]{13})[0-9a-f]{24}$"
_CURSOR = re.compile(CURSOR_PATTERN)


@frozen
class Cursor:
    """Where a page of payments (newest first) ended."""

    created_ms: int
    payment_id: str

    def encode(self) -> str:
        return f"{self.created_ms:x}.{self.payment_id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises ValueError for anything but an encoded cursor."""
        if not _CURSOR.fullmatch(text):
            raise ValueError("not a cursor")
        created, _, payment_id = text.partition(".")
        return cls(int(created, 16), payment_id)


@frozen
class PaymentQuery:
    tenant: str
    merchant_reference: str | None = None
    states: tuple[PaymentState, ...] = ()
    acquirer: str | None = None
    created_from_ms: int | None = None  # inclusive
    created_to_ms: int | None = None  # exclusive
    limit: int = 50
    after: Cursor | None = None


@frozen
class Page:
    payments: list[PaymentRecord]
    next_cursor: Cursor | None


class Ledger(Protocol):
    async def apply(self, changes: Sequence[Change]) -> None:
        """Record these versions: the current rows move forward only (a
        version never replaces a newer one), events and movements are added
        once however often a version arrives.  All or nothing."""
        ...

    async def payment(self, payment_id: str) -> PaymentRecord | None: ...

    async def refund(self, refund_id: str) -> RefundRecord | None: ...

    async def payments(self, query: PaymentQuery) -> Page: ...

    async def history(self, tenant: str, payment_id: str) -> list[HistoryEvent]:
        """Every version of the payment and of its refunds, oldest first."""
        ...

    async def movements(
        self,
        from_ms: int,
        to_ms: int,
        acquirer: str | None = None,
        *,
        after: tuple[int, str] | None = None,
        limit: int = 10_000,
    ) -> list[Movement]:
        """Ordered by (at_ms, key); ``after`` the last (at_ms, key) of the
        previous page, so an export of any size goes page by page."""
        ...

    async def purge(self, before_ms: int) -> int:
        """Forget settled payments (and their refunds, events and movements)
        last changed before ``before_ms``; returns how many payments."""
        ...

    async def check_schema(self) -> None:
        """Raise SchemaNotCurrent if migrations are pending."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
