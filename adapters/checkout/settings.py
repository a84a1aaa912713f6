"""Settings of a Checkout.com account (unified payments API)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from adapters.settings import AcquirerSettings


class CheckoutSettings(AcquirerSettings):
    kind: Literal["checkout"] = "checkout"
    processing_channel_id: str | None = Field(
        None,
        pattern=r"^pc_\w{26}$",
        description="required by keys that serve several processing channels",
    )
    platform: Literal["nas", "abc"] = Field(
        "nas",
        description="nas: keys sent as Bearer; abc: the previous platform's raw secret keys",
    )
    return_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="success_url and failure_url after 3-D Secure, unless the payment gives one",
    )
