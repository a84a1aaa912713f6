"""``payrouter ledger export``: money movements as CSV, for finance to
reconcile against the acquirers' settlement reports.

One line per movement (authorization, capture, void, refund) with the
acquirer's reference and the amount in minor units and in decimal; ordered
by time, read page by page so a month of movements needs no more memory
than one page.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import TextIO

from router.ledger.protocol import Ledger, Movement
from router.payments import money

COLUMNS = (
    "at",
    "kind",
    "payment_id",
    "refund_id",
    "acquirer",
    "acquirer_reference",
    "amount",
    "amount_decimal",
    "currency",
    "livemode",
    "tenant",
)
PAGE = 5_000


def moment(text: str, *, end_of_day: bool = False) -> int:
    """``YYYY-MM-DD`` (UTC midnight; with ``end_of_day`` the next midnight, so
    a ``--to`` date is included) or an ISO 8601 time (UTC when no zone given).
    Raises ValueError for anything else."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1000)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int((start + timedelta(days=1 if end_of_day else 0)).timestamp() * 1000)


async def movements(
    ledger: Ledger, from_ms: int, to_ms: int, acquirer: str | None
) -> AsyncIterator[Movement]:
    after: tuple[int, str] | None = None
    while True:
        page = await ledger.movements(from_ms, to_ms, acquirer, after=after, limit=PAGE)
        for movement in page:
            yield movement
        if len(page) < PAGE:
            return
        after = (page[-1].at_ms, page[-1].key)


def _row(m: Movement) -> list[str]:
    at = datetime.fromtimestamp(m.at_ms / 1000, UTC).isoformat(timespec="milliseconds")
    return [
        at,
        str(m.kind),
        m.payment_id,
        m.refund_id or "",
        m.acquirer,
        m.acquirer_reference or "",
        str(m.amount),
        money.to_decimal(m.amount, m.currency),
        m.currency,
        "true" if m.livemode else "false",
        m.tenant,
    ]


async def write_csv(
    ledger: Ledger, out: TextIO, from_ms: int, to_ms: int, acquirer: str | None = None
) -> int:
    """Write the header and every movement in [from_ms, to_ms); returns the count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    async for movement in movements(ledger, from_ms, to_ms, acquirer):
        writer.writerow(_row(movement))
        count += 1
    return count
