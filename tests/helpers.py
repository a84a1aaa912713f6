"""Test helpers shared by unit and integration tests."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from router.config import Config
from router.known_keys import DEMO_API_KEY

T = TypeVar("T")

DEMO_KEY = DEMO_API_KEY
OTHER_KEY = "sk_test_other"
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
OTHER_AUTH = {"Authorization": f"Bearer {OTHER_KEY}"}
#: the id secret of every test config that shares a store between instances
ID_SECRET = "test-id-secret-0123456789abcdef"
ID_SECRET_ENV = {"PAYROUTER_ID_SECRET": ID_SECRET}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def secret(name: str, value: str) -> dict[str, str]:
    """A resolved ``{env: NAME}`` for configs built in memory."""
    return {"env": name, "value": value}


def redis_store(url: str, **extra: Any) -> dict[str, Any]:
    """The store section of a config on Redis."""
    return {
        "kind": "redis",
        "url": url,
        "id_secret": secret("PAYROUTER_ID_SECRET", ID_SECRET),
        **extra,
    }


#: webhook verification keys of the real-acquirer connectors in tests
ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
STRIPE_WHSEC = "whsec_test_0123456789"
CKO_WEBHOOK_SECRET = "cko_secret_0123456789"


def webhook_acquirers(base_url: str = "http://127.0.0.1:9", **stripe: Any) -> dict[str, Any]:
    """Stripe, Adyen and Checkout.com acquirers that take webhooks; ``base_url``
    is never called where events are the only input."""
    return {
        "stripe": {
            "kind": "stripe",
            "base_url": base_url,
            "api_key": secret("STRIPE_KEY", "sk_test_stripe"),
            "webhook_secret": secret("STRIPE_WHSEC", STRIPE_WHSEC),
            **stripe,
        },
        "adyen": {
            "kind": "adyen",
            "base_url": base_url,
            "merchant_account": "Shop",
            "return_url": "https://shop.example/r",
            "api_key": secret("ADYEN_KEY", "adyen_api_key"),
            "webhook_secret": secret("ADYEN_HMAC", ADYEN_HMAC_KEY),
        },
        "checkout": {
            "kind": "checkout",
            "base_url": base_url,
            "api_key": secret("CKO_KEY", "sk_sbox_checkout"),
            "webhook_secret": secret("CKO_WHSEC", CKO_WEBHOOK_SECRET),
        },
    }


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
    if data.get("store", {}).get("kind") == "redis":
        data["store"].setdefault("id_secret", secret("PAYROUTER_ID_SECRET", ID_SECRET))
    return Config.model_validate(data)


def headers(key: str, auth: dict[str, str] = AUTH) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key, "Content-Type": "application/json"}


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
    config: Path,
    port: int | None = None,
    log: Path | None = None,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
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
            env={**os.environ, "PYTHONUNBUFFERED": "1", **ID_SECRET_ENV, **(env or {})},
            start_new_session=True,  # its own process group: stop_router can kill its workers
        )


async def stop_router(proc: subprocess.Popen[bytes], seconds: float = 15) -> int:
    """SIGINT (the stop without the rolling-deploy drain, which has tests of
    its own), then its exit code; a router (and its workers) still running
    after ``seconds`` is killed and -9 returned, so no test leaks processes."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return await asyncio.to_thread(proc.wait, seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, seconds)
        return -9


async def eventually(
    fetch: Callable[[], Awaitable[T]],
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
        result = await fetch()
        if done(result) or loop.time() >= deadline:
            return result
        await asyncio.sleep(every)


async def until(condition: Callable[[], bool], *, seconds: float, every: float = 0.05) -> bool:
    """Wait for an in-process condition; its last value (False on timeout)."""

    async def check() -> bool:
        return condition()

    return await eventually(check, bool, seconds=seconds, every=every)
