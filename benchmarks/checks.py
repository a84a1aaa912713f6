"""What a chaos run must prove, checked against the acquirers' own books.

* double charges: a payment with more than one money-moving create across
  the sandbox ledgers;
* lost accepted payments: a caller got 201 for a payment that now answers
  404, or whose state contradicts the answer (captured, now pending);
* wrong stored answers: replaying the caller's request with its key returns
  another payment or another outcome than the first answer;
* stuck payments: still pending or unknown once the reconciler had its time;
* undocumented 5xx: any 5xx whose code is not in the README's status table.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp

from benchmarks.loadgen import Sample, Target
from router.problems import DOCUMENTED_5XX

UNRESOLVED = ("pending", "unknown")
#: a later state the first answer may legitimately have moved on to
MOVED_ON = {"capture_pending": {"captured", "capture_failed"}, "unknown": {"captured", "failed"}}


def double_charges(ledgers: list[dict[str, Any]]) -> dict[str, int]:
    """Payment ids with more than one money-moving creation, across acquirers."""
    counts: Counter[str] = Counter()
    for ledger in ledgers:
        for event in ledger["events"]:
            if event["kind"] in ("sale", "authorization") and event["reference"]:
                counts[event["reference"]] += 1
    return {ref: n for ref, n in counts.items() if n > 1}


def undocumented_5xx(samples: list[Sample]) -> Counter[str]:
    found: Counter[str] = Counter()
    for sample in samples:
        for status, code in sample.answers:
            if status >= 500 and (code or "") not in DOCUMENTED_5XX:
                found[f"{status} {code}"] += 1
    return found


async def _get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, Any]:
    async with session.get(url, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def settle(
    url: str, headers: dict[str, str], payment_ids: set[str], wait_s: float
) -> dict[str, tuple[int, str | None]]:
    """Each payment's final (HTTP status, state), once the reconciler had ``wait_s``."""
    states: dict[str, tuple[int, str | None]] = {}
    deadline = time.monotonic() + wait_s
    async with aiohttp.ClientSession() as session:
        while True:
            for pid in payment_ids:
                status, body = await _get(session, f"{url}/v1/payments/{pid}", headers)
                states[pid] = (status, body.get("status") if status == 200 else None)
            if time.monotonic() > deadline or all(
                state not in UNRESOLVED for _, state in states.values()
            ):
                return states
            await asyncio.sleep(0.5)


async def replay_answers(target: Target, samples: list[Sample], limit: int = 200) -> list[str]:
    """Send the accepted requests again, with their keys: the stored answer must be the same."""
    wrong: list[str] = []
    accepted = [s for s in samples if s.status == 201 and s.payment_id][:limit]
    async with aiohttp.ClientSession() as session:
        for sample in accepted:
            async with session.post(
                target.urls[0] + target.path,
                json=target.body,
                headers={**target.headers, "Idempotency-Key": sample.key},
            ) as resp:
                body = await resp.json(content_type=None)
            if (resp.status, body.get("id"), body.get("status")) != (
                201,
                sample.payment_id,
                sample.payment_status,
            ):
                wrong.append(sample.key)
    return wrong


def lost(samples: list[Sample], states: dict[str, tuple[int, str | None]]) -> list[str]:
    out = []
    for sample in samples:
        if sample.status != 201 or not sample.payment_id:
            continue
        status, state = states.get(sample.payment_id, (0, None))
        answered = sample.payment_status or ""
        if status != 200 or (state != answered and state not in MOVED_ON.get(answered, set())):
            out.append(sample.payment_id)
    return out


async def verify(
    url: str,
    target: Target,
    samples: list[Sample],
    ledgers: list[dict[str, Any]],
    wait_s: float = 15,
) -> dict[str, Any]:
    """Every number a chaos scenario must report, each of which must be 0."""
    ids = {s.payment_id for s in samples if s.payment_id}
    ids |= {e["reference"] for ledger in ledgers for e in ledger["events"] if e["reference"]}
    states = await settle(url, target.headers, ids, wait_s)
    doubles = double_charges(ledgers)
    lost_ids = lost(samples, states)
    wrong = await replay_answers(target, samples)
    stuck = sorted(pid for pid, (_, state) in states.items() if state in UNRESOLVED)
    odd = undocumented_5xx(samples)
    return {
        "double_charges": len(doubles),
        "double_charged_ids": sorted(doubles)[:10],
        "lost_accepted_payments": len(lost_ids),
        "lost_ids": lost_ids[:10],
        "wrong_stored_answers": len(wrong),
        "wrong_keys": wrong[:10],
        "stuck_payments": len(stuck),
        "stuck_ids": stuck[:10],
        "undocumented_5xx": sum(odd.values()),
        "undocumented_5xx_codes": dict(odd),
    }


# ------------------------------------------------------------ system of record

#: the movements each sandbox ledger line stands for
_SANDBOX_MOVES = {
    "sale": ("authorization", "capture"),
    "authorization": ("authorization",),
    "capture": ("capture",),
    "void": ("void",),
    "refund": ("refund",),
}


async def drained(url: str, headers: dict[str, str], wait_s: float) -> int:
    """Wait until the router reports an empty drain backlog; the last backlog."""
    deadline = time.monotonic() + wait_s
    backlog = -1
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            status, body = await _get(session, f"{url}/admin/ledger", headers)
            backlog = int(body.get("backlog", -1)) if status == 200 else -1
            if backlog == 0:
                return 0
            await asyncio.sleep(0.5)
    return backlog


async def system_of_record(
    pg_url: str, ledgers: list[dict[str, Any]], samples: list[Sample]
) -> dict[str, Any]:
    """PostgreSQL against the acquirers' books: every movement the sandboxes
    recorded is there once, nothing else is; every accepted payment is there
    in the state it was answered; every payment has every version as an event."""
    import asyncpg

    sandbox: Counter[tuple[str, str, int]] = Counter()
    for ledger in ledgers:
        for line in ledger["events"]:
            for kind in _SANDBOX_MOVES.get(line["kind"], ()):
                sandbox[(line["reference"], kind, int(line["amount"]))] += 1
    conn = await asyncpg.connect(pg_url)
    try:
        moves = Counter(
            (r["payment_id"], r["kind"], int(r["amount"]))
            for r in await conn.fetch("SELECT payment_id, kind, amount FROM movements")
        )
        rows = {
            r["id"]: (r["state"], int(r["version"]))
            for r in await conn.fetch("SELECT id, state, version FROM payments")
        }
        versions: dict[str, list[int]] = {}
        for r in await conn.fetch(
            "SELECT record_id, version FROM events WHERE record_kind = 'payment' "
            "ORDER BY record_id, version"
        ):
            versions.setdefault(r["record_id"], []).append(int(r["version"]))
    finally:
        await conn.close()
    accepted = {s.payment_id: s.payment_status for s in samples if s.status == 201 and s.payment_id}
    missing = sorted(pid for pid in accepted if pid not in rows)
    holes = sorted(
        pid
        for pid, (_, version) in rows.items()
        if versions.get(pid) != list(range(1, version + 1))
    )
    return {
        "ledger_payments": len(rows),
        "ledger_movements": sum(moves.values()),
        "ledger_movements_not_at_acquirer": sum((moves - sandbox).values()),
        "acquirer_movements_not_in_ledger": sum((sandbox - moves).values()),
        "accepted_payments_not_in_ledger": len(missing),
        "missing_ids": missing[:10],
        "payments_with_missing_versions": len(holes),
        "holes_ids": holes[:10],
    }
