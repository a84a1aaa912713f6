"""Stripe: PaymentIntents, Refunds and webhooks."""

from adapters.connector import Connector
from adapters.stripe.adapter import StripeAdapter
from adapters.stripe.settings import StripeSettings
from adapters.stripe.webhooks import WEBHOOKS

CONNECTOR = Connector(
    kind="stripe", settings=StripeSettings, adapter=StripeAdapter, webhooks=WEBHOOKS
)
