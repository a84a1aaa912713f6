"""What every acquirer's settings share, and how secrets are written.

Each connector declares its own settings model (``adapters/<kind>/settings.py``)
as a subclass of :class:`AcquirerSettings`; the registry joins them into one
pydantic union discriminated on ``kind``, so an unknown kind is refused with
the list of known ones and a connector-specific field never leaks into
another connector's settings.

Secrets are never written in a config file: a secret field is
``{env: VARIABLE_NAME}`` and the loader fills in the value.  An empty or short
value is refused here, naming the field, because an empty HMAC key makes a
webhook signature forgeable by anyone.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvSecret(Strict):
    """``{env: NAME}``: resolved when the config is loaded, never stored in it."""

    #: below this many characters a secret is refused (brute-force range)
    MIN_LENGTH: ClassVar[int] = 8

    env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
    value: str = Field("", exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _no_literals(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("secrets are never written in the file: use {env: VARIABLE_NAME}")
        return data

    @model_validator(mode="after")
    def _long_enough(self) -> EnvSecret:
        if not self.value:
            raise ValueError(f"environment variable {self.env} is empty")
        if len(self.value) < self.MIN_LENGTH:
            raise ValueError(
                f"environment variable {self.env} holds a secret shorter than "
                f"{self.MIN_LENGTH} characters"
            )
        return self

    def get(self) -> str:
        return self.value


class SigningKey(EnvSecret):
    """A key that authenticates messages (webhook HMACs, id derivation): long,
    because anyone who can guess it can forge what it signs."""

    MIN_LENGTH: ClassVar[int] = 16


class Timeouts(Strict):
    connect_s: float = Field(2.0, gt=0, le=60)
    read_s: float = Field(10.0, gt=0, le=120)


class HealthSettings(Strict):
    interval_s: float = Field(2.0, gt=0, le=300)
    timeout_s: float = Field(1.0, gt=0, le=60)
    rise: int = Field(2, ge=1, le=20)
    fall: int = Field(2, ge=1, le=20)
    window_s: float = Field(30.0, gt=0, le=3600, description="passive outlier window")
    min_requests: int = Field(10, ge=1)
    max_error_rate: float = Field(0.5, gt=0, le=1)
    ejection_s: float = Field(15.0, gt=0, le=3600)
    latency_half_life_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="the latency average forgets what it saw with this half-life, so an "
        "acquirer that healed wins its traffic back",
    )
    latency_recheck_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="an acquirer not measured for this long gets one request from the "
        "least_latency balancer, and that measurement replaces its stale average: a healed "
        "acquirer wins its traffic back within about this time",
    )


Counted = Literal["not_processed", "outcome_unknown", "integration_error"]


def _all_counted() -> list[Counted]:
    return ["not_processed", "outcome_unknown", "integration_error"]


class BreakerSettings(Strict):
    fail_max: int = Field(5, ge=1, le=1000)
    reset_timeout_s: float = Field(10.0, gt=0, le=3600)
    counted: list[Counted] = Field(
        default_factory=_all_counted, description="failures that count toward opening"
    )


def _one_secret_or_many(data: Any) -> Any:
    """``webhook_secret: {env: X}`` is short for a one-item ``webhook_secrets``."""
    if isinstance(data, dict) and "webhook_secret" in data:
        data = dict(data)
        one = data.pop("webhook_secret")
        data["webhook_secrets"] = [*data.get("webhook_secrets", []), *([one] if one else [])]
    return data


class AcquirerSettings(Strict):
    """Where an acquirer is and how the router treats it; connectors add their own fields."""

    #: every subclass narrows this to ``Literal["<kind>"]``
    kind: str
    base_url: str | None = None
    embedded: bool = False
    api_key: EnvSecret | None = None
    webhook_secrets: list[SigningKey] = Field(
        default_factory=list,
        description="verification keys; several are accepted at once while one is rotated",
    )
    timeouts: Timeouts = Timeouts()
    ca_file: str | None = Field(None, description="trust this CA for the acquirer's TLS")
    tls_verify: bool = Field(True, description="may be false only for a test-mode acquirer")
    test_mode: bool = True
    weight: int = Field(1, ge=0, le=1000, description="for the weighted balancer")
    priority: int = Field(100, ge=0, le=10000, description="lower is tried first")
    health: HealthSettings = HealthSettings()
    breaker: BreakerSettings = BreakerSettings()

    #: whether the connector needs an api_key (the sandbox may run without one)
    NEEDS_API_KEY: ClassVar[bool] = True
    #: whether the router can start this acquirer itself (only simulators can)
    EMBEDDABLE: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _webhook_secret_shorthand(cls, data: Any) -> Any:
        return _one_secret_or_many(data)

    @model_validator(mode="after")
    def _where_and_how(self) -> AcquirerSettings:
        if self.embedded == bool(self.base_url):
            raise ValueError("give exactly one of base_url or embedded: true")
        if self.embedded and not self.EMBEDDABLE:
            raise ValueError(f"a {self.kind} acquirer cannot be embedded; give its base_url")
        if not self.tls_verify and not self.test_mode:
            raise ValueError("TLS verification cannot be turned off for a live acquirer")
        if self.base_url and not re.match(r"^https?://", self.base_url):
            raise ValueError("base_url must start with http:// or https://")
        if self.NEEDS_API_KEY and self.api_key is None:
            raise ValueError(f"a {self.kind} acquirer needs api_key: {{env: NAME}}")
        if not self.test_mode and not (self.base_url or "").startswith("https://"):
            raise ValueError("a live acquirer must be reached over https://")
        return self
