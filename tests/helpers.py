"""Test helpers shared by unit and integration tests."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from router.config import Config

T = TypeVar("T")

DEMO_KEY = "sk_test_demo"
OTHER_KEY = "sk_test_other"
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
OTHER_AUTH = {"Authorization": f"Bearer {OTHER_KEY}"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_config(acquirer_urls: dict[str, str], **sections: Any) -> Config:
    """A router config pointing at already-running sandbox acquirers."""
    data: dict[str, Any] = {
        "callers": {
            "demo": {"api_key_sha256": [sha(DEMO_KEY)]},
            "other": {"api_key_sha256": [sha(OTHER_KEY)]},
        },
        "acquirers": {
            name: {"kind": "sandbox", "base_url": url, "timeouts": {"connect_s": 1, "read_s": 1}}
            for name, url in acquirer_urls.items()
        },
        "routing": {"default": list(acquirer_urls)},
        "payments": {"deadline_s": 10, "same_acquirer_replays": 2, "lease_s": 20},
        "reconciler": {"interval_s": 0.2, "first_check_s": 0},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return Config.model_validate(data)


def headers(key: str, auth: dict[str, str] = AUTH) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key}


def charges_by_reference(*ledgers: dict[str, Any]) -> dict[str, int]:
    """Money-moving creations per payment id, across acquirers (>1 = double charge)."""
    counts: dict[str, int] = {}
    for ledger in ledgers:
        for event in ledger["events"]:
            if event["kind"] in ("sale", "authorization"):
                counts[event["reference"]] = counts.get(event["reference"], 0) + 1
    return counts


ROOT = Path(__file__).resolve().parents[1]


def spawn_router(
    config: Path, port: int | None = None, log: Path | None = None, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """``payrouter serve`` as a real process (the caller stops it)."""
    args = [sys.executable, "-m", "router.cli", "serve", "--config", str(config), *extra]
    if port is not None:
        args += ["--port", str(port)]
    with log.open("wb") if log else open(os.devnull, "wb") as err:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


async def eventually(
    fetch: Callable[[], Awaitable[T] | T],
    done: Callable[[T], bool],
    *,
    seconds: float,
    every: float = 0.05,
) -> T:
    """Poll ``fetch`` until ``done`` holds or ``seconds`` pass, and return the
    last value: the test asserts on it, so a timeout fails with the real value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = fetch()
        result: T = await value if inspect.isawaitable(value) else value  # type: ignore[assignment]
        if done(result) or loop.time() >= deadline:
            return result
        await asyncio.sleep(every)
