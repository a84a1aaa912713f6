"""Adyen: Checkout API v71 and standard webhooks."""

from adapters.adyen.adapter import AdyenAdapter
from adapters.adyen.settings import AdyenSettings
from adapters.adyen.webhooks import WEBHOOKS
from adapters.connector import Connector

CONNECTOR = Connector(
    kind="adyen",
    settings=AdyenSettings,
    adapter=AdyenAdapter,
    webhooks=WEBHOOKS,
    numeric_tokens=True,  # stored payment method ids like 8416038790273850
)
