"""Checkout.com: unified payments API and webhooks."""

from adapters.checkout.adapter import CheckoutAdapter
from adapters.checkout.settings import CheckoutSettings
from adapters.checkout.webhooks import WEBHOOKS
from adapters.connector import Connector

CONNECTOR = Connector(
    kind="checkout", settings=CheckoutSettings, adapter=CheckoutAdapter, webhooks=WEBHOOKS
)
