"""Settings of a Stripe account (PaymentIntents API)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from adapters.settings import AcquirerSettings


class StripeSettings(AcquirerSettings):
    kind: Literal["stripe"] = "stripe"
    return_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="where shoppers return after 3-D Secure, unless the payment gives one",
    )
