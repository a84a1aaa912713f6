"""What the adapter unit tests share: orders, settings and the request sent."""

from __future__ import annotations

from typing import Any

from aioresponses import aioresponses

from adapters.base import FollowOnOrder, PaymentOrder
from adapters.credentials import AcquirerToken
from adapters.settings import EnvSecret

BASE = "http://127.0.0.1:9"
ORDER = PaymentOrder(
    payment_id="pay_1",
    amount=1299,
    currency="EUR",
    credential=AcquirerToken("pm_card_visa"),
    capture=False,
    idempotency_key="pr_" + "a" * 48,
    merchant_reference="order-7",
    metadata={"cart": "42"},
)
FOLLOW = FollowOnOrder(
    payment_id="pay_1",
    acquirer_reference="ref_1",
    amount=500,
    currency="EUR",
    idempotency_key="pr_key2",
    refund_id="re_1",
)


def key(value: str) -> EnvSecret:
    return EnvSecret(env="ACQUIRER_KEY", value=value)


def sent(mock: aioresponses) -> tuple[str, str, dict[str, Any]]:
    """The one request the adapter made: method, URL and the aiohttp arguments."""
    (((method, url), calls),) = mock.requests.items()
    return method, str(url), calls[0].kwargs
