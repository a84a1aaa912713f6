"""Settings of an Adyen merchant account (Checkout API v71)."""

from __future__ import annotations

import binascii
from typing import Literal

from pydantic import Field, model_validator

from adapters.settings import AcquirerSettings


class AdyenSettings(AcquirerSettings):
    kind: Literal["adyen"] = "adyen"
    merchant_account: str = Field(min_length=1, max_length=80)
    return_url: str = Field(
        pattern=r"^https?://", description="where shoppers return after 3-D Secure"
    )

    @model_validator(mode="after")
    def _hmac_keys_are_hex(self) -> AdyenSettings:
        for secret in self.webhook_secrets:
            try:
                binascii.unhexlify(secret.get())
            except (binascii.Error, ValueError):
                raise ValueError(
                    f"webhook_secrets: {secret.env} must hold Adyen's HMAC key in hex"
                ) from None
        return self
