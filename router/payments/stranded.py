"""Claims whose closing write failed, written again once the store is back.

A request's claim ends with a write on the lease alone: complete it with a
final answer that changed no record, or release it.  When the store drops out
just then, the claim stays held, and the caller's retry is refused (409 in
flight) until the lease lapses: up to ``payments.lease_s`` (15 s by default)
after the store is back, for nothing.

Writing it again later is safe because the write is conditional on the
owner token: it lands only while this request still holds the claim.  A copy
that did land before the error, a takeover after the lease lapsed, or the
record's own expiry all turn the retry into LeaseLost, and it is dropped.
Past its lease a claim is free anyway, so an entry is kept only until then;
the number kept is bounded (what does not fit lapses, as without this), and
nothing here outlives the process: a crash loses the entries, and the leases
lapse as they always did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from adapters.values import frozen
from router.store.protocol import Commit, Lease, LeaseLost, Store, StoreUnavailable

if TYPE_CHECKING:
    from router.runtime import Runtime

log = logging.getLogger(__name__)

#: entries kept at most: a store outage at 1,000 payments/s with a 15 s lease
#: strands 15,000 claims at most, and an entry is a few hundred bytes
LIMIT = 20_000
#: how often a pass runs while entries wait
EVERY_S = 0.5
#: writes in flight at once in a pass
BATCH = 32


class Fate(Enum):
    """What became of a stranded claim (the metric's ``result`` label)."""

    RELEASED = "released"  # the retried write landed
    TAKEN = "taken"  # no longer this owner's: landed before, taken over, or expired
    LAPSED = "lapsed"  # the lease ran out before the store came back
    DROPPED = "dropped"  # over LIMIT: left to lapse


@frozen
class _Entry:
    key: tuple[str, str]  # (scope, owner)
    commit: Commit
    until: float  # time.monotonic() at which the lease lapses on its own


class StrandedClaims:
    """The closing writes still to be made, one per claim and owner (two
    requests on one key may each leave one behind)."""

    def __init__(
        self, limit: int = LIMIT, batch: int = BATCH, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._limit = limit
        self._batch = batch
        self._clock = clock
        self._waiting = asyncio.Event()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, shard: int, lease: Lease, lease_ms: int) -> Fate | None:
        """Keep the closing write of ``lease`` until the lease would lapse
        (``lease_ms`` from now, at most); ``DROPPED`` if full."""
        key = (lease.scope, lease.owner)
        if len(self._entries) >= self._limit and key not in self._entries:
            return Fate.DROPPED
        commit = Commit(shard=shard, lease=lease, durable=False)
        self._entries[key] = _Entry(key, commit, self._clock() + lease_ms / 1000)
        self._waiting.set()
        return None

    async def wait(self) -> None:
        """Until there is something to write."""
        while not self._entries:
            self._waiting.clear()
            await self._waiting.wait()

    async def retry(self, store: Store) -> dict[Fate, int]:
        """One pass, oldest first, ``batch`` writes at a time (after an outage
        there may be thousands, most of them claims that never reached the
        store).  The pass stops after a batch with a StoreUnavailable in it:
        the store is still out, and the rest would each wait out the same
        timeout.  What it did not finish is kept."""
        fates = dict.fromkeys(Fate, 0)
        entries = list(self._entries.values())
        for start in range(0, len(entries), self._batch):
            batch = entries[start : start + self._batch]
            written = await asyncio.gather(*(self._write(store, entry) for entry in batch))
            for entry, fate in zip(batch, written, strict=True):
                if fate is None:
                    continue
                if self._entries.get(entry.key) is entry:
                    del self._entries[entry.key]
                fates[fate] += 1
            if None in written:
                break
        return fates

    async def _write(self, store: Store, entry: _Entry) -> Fate | None:
        if self._clock() >= entry.until:
            return Fate.LAPSED
        try:
            await store.commit(entry.commit)
        except LeaseLost:
            return Fate.TAKEN
        except StoreUnavailable:
            return None
        return Fate.RELEASED


async def stranded_loop(current: Callable[[], Runtime], every_s: float = EVERY_S) -> None:
    """Write the stranded claims again until each lands or lapses."""
    while True:
        rt = current()
        await rt.stranded.wait()
        fates = await rt.stranded.retry(rt.store)
        for fate, count in fates.items():
            if count:
                rt.metrics.claims_stranded.labels(fate.value).inc(count)
        if any(fates.values()):
            log.info(
                "stranded claims: %s; %d still waiting for the store",
                ", ".join(f"{count} {fate.value}" for fate, count in fates.items() if count),
                len(rt.stranded),
            )
        await asyncio.sleep(every_s)
