"""Load generator: open loop at a target rate, or closed loop at a concurrency.

Each payment has a unique Idempotency-Key.  Like a well-behaved internal
caller, the generator retries with the SAME key on timeouts, connection
errors, 409 (in flight) and 503 (retry later), and on a 202 ``unknown`` or
``pending`` (a retry resolves the open attempt); it spreads retries over every
router URL it was given, so a router that dies mid-run is routed around.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tqdm import tqdm

RETRYABLE = {409, 503}
FINAL_OK = {"authorized", "captured", "declined"}


@dataclass
class Sample:
    key: str
    started: float  # seconds since the run began
    latency_s: float
    status: int  # last HTTP status (0: never answered)
    payment_status: str | None = None
    payment_id: str | None = None
    acquirer: str | None = None
    tries: int = 1
    error: str | None = None
    #: every answer on the way: (HTTP status, problem code or payment status)
    answers: list[tuple[int, str | None]] = field(default_factory=list)


@dataclass
class Target:
    urls: list[str]
    path: str = "/v1/payments"
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(
        default_factory=lambda: {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}
    )


async def one_payment(
    session: aiohttp.ClientSession,
    target: Target,
    key: str,
    t0: float,
    *,
    timeout_s: float = 5.0,
    max_tries: int = 40,
    rng: random.Random,
) -> Sample:
    started = time.monotonic()
    urls = itertools.cycle(rng.sample(target.urls, len(target.urls)))
    status, error, body = 0, None, {}
    answers: list[tuple[int, str | None]] = []
    for tries in range(1, max_tries + 1):
        url = next(urls)
        try:
            async with session.post(
                url + target.path,
                json=target.body,
                headers={**target.headers, "Idempotency-Key": key},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                status = resp.status
                try:
                    body = await resp.json(content_type=None)
                except ValueError:  # a proxy's plain-text error page
                    body = {}
                error = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, error, body = 0, type(exc).__name__, {}
        answers.append((status, body.get("code") or body.get("status")))
        unresolved = status == 202 and body.get("status") in ("unknown", "pending")
        if status in RETRYABLE or status == 0 or unresolved:
            await asyncio.sleep(min(1.0, 0.05 * 2 ** min(tries, 5)) * rng.uniform(0.5, 1.5))
            continue
        break
    return Sample(
        key=key,
        started=started - t0,
        latency_s=time.monotonic() - started,
        status=status,
        payment_status=body.get("status"),
        payment_id=body.get("id"),
        acquirer=body.get("acquirer"),
        tries=tries,
        error=error,
        answers=answers,
    )


async def open_loop(
    target: Target,
    rate: float,
    duration_s: float,
    label: str,
    *,
    events: list[tuple[float, Callable[[], Awaitable[None]]]] | None = None,
    seed: int = 1,
    max_tries: int = 40,
) -> list[Sample]:
    """Send at ``rate``/s for ``duration_s`` whatever the latency (no coordinated omission)."""
    rng = random.Random(seed)
    total = int(rate * duration_s)
    samples: list[Sample] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        bar = tqdm(total=total, desc=label, unit="pay", leave=False, mininterval=0.5)
        scheduled = _schedule(events or [], t0)

        async def fire(i: int) -> None:
            sample = await one_payment(
                session, target, f"{label}-{seed}-{i}", t0, rng=rng, max_tries=max_tries
            )
            samples.append(sample)
            bar.update()

        tasks = []
        for i in range(total):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fire(i)))
        await asyncio.gather(*tasks, *scheduled)
        bar.close()
    return samples


async def closed_loop(
    target: Target,
    concurrency: int,
    duration_s: float,
    label: str,
    seed: int = 1,
) -> list[Sample]:
    """``concurrency`` callers, each sending its next payment when the last ends."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    counter = itertools.count()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        bar = tqdm(desc=label, unit="pay", leave=False, mininterval=0.5)

        async def caller() -> None:
            while time.monotonic() - t0 < duration_s:
                sample = await one_payment(
                    session, target, f"{label}-{seed}-{next(counter)}", t0, rng=rng
                )
                samples.append(sample)
                bar.update()

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        bar.close()
    return samples


def _schedule(
    events: list[tuple[float, Callable[[], Awaitable[None]]]], t0: float
) -> list[asyncio.Task[None]]:
    async def at(when: float, action: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(max(0.0, t0 + when - time.monotonic()))
        await action()

    return [asyncio.create_task(at(when, action)) for when, action in events]
