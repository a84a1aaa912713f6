"""Settings of a sandbox acquirer: a real HTTP simulator, local or embedded."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from adapters.sandbox.faults import FaultRule
from adapters.settings import AcquirerSettings


class SandboxSettings(AcquirerSettings):
    kind: Literal["sandbox"] = "sandbox"
    faults: list[FaultRule] = Field(
        default_factory=list, description="fault rules for an embedded sandbox"
    )

    NEEDS_API_KEY: ClassVar[bool] = False
    EMBEDDABLE: ClassVar[bool] = True

    @model_validator(mode="after")
    def _sandbox_rules(self) -> SandboxSettings:
        if self.faults and not self.embedded:
            raise ValueError("faults apply only to embedded sandbox acquirers")
        if not self.test_mode:
            raise ValueError("a sandbox acquirer is always test_mode: true")
        return self
