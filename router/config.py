"""Configuration: YAML validated by pydantic, secrets only from the environment.

A secret field in the YAML is written ``{env: NAME}``; a literal value there is
refused, so a config file can be committed and shared without leaking keys.
Every error names the file, the dotted path inside it and the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from adapters.sandbox.faults import FaultRule

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvSecret(Strict):
    """``{env: NAME}``: resolved when the config is loaded, never stored in it."""

    env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
    value: str = Field("", exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _no_literals(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("secrets are never written in the file: use {env: VARIABLE_NAME}")
        return data

    def get(self) -> str:
        return self.value


def _resolve_secrets(data: Any, environ: dict[str, str] | os._Environ[str], path: str) -> Any:
    """Fill ``{env: NAME}`` mappings from the environment before validation."""
    if isinstance(data, dict):
        if "env" in data and set(data) != {"env"}:
            raise ConfigError([(path, "a secret reference is exactly {env: VARIABLE_NAME}")])
        if set(data) == {"env"} and isinstance(data["env"], str):
            name = data["env"]
            if name not in environ:
                raise ConfigError([(path, f"environment variable {name} is not set")])
            return {"env": name, "value": environ[name]}
        return {
            k: _resolve_secrets(v, environ, f"{path}.{k}" if path else str(k))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_resolve_secrets(v, environ, f"{path}[{i}]") for i, v in enumerate(data)]
    return data


class TlsListener(Strict):
    cert_file: str
    key_file: str


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024)
    tls: TlsListener | None = Field(None, description="serve HTTPS with this certificate")
    watch_config_s: float = Field(
        2.0, ge=0, le=3600, description="poll the config file for changes; 0 turns it off"
    )


class StoreConfig(Strict):
    kind: Literal["memory", "redis"] = "memory"
    url: str | None = Field(
        None, description="redis://, rediss://, redis+sentinel://, redis+cluster://"
    )
    password: EnvSecret | None = None
    ttl_s: int = Field(24 * 3600, ge=60, le=30 * 24 * 3600)
    op_timeout_s: float = Field(1.0, gt=0, le=30)

    @model_validator(mode="after")
    def _url_for_redis(self) -> StoreConfig:
        if self.kind == "redis" and not self.url:
            raise ValueError("store.url is required when kind is redis")
        return self


class Timeouts(Strict):
    connect_s: float = Field(2.0, gt=0, le=60)
    read_s: float = Field(10.0, gt=0, le=120)


class HealthConfig(Strict):
    interval_s: float = Field(2.0, gt=0, le=300)
    timeout_s: float = Field(1.0, gt=0, le=60)
    rise: int = Field(2, ge=1, le=20)
    fall: int = Field(2, ge=1, le=20)
    window_s: float = Field(30.0, gt=0, le=3600, description="passive outlier window")
    min_requests: int = Field(10, ge=1)
    max_error_rate: float = Field(0.5, gt=0, le=1)
    ejection_s: float = Field(15.0, gt=0, le=3600)


Counted = Literal["not_processed", "outcome_unknown", "integration_error"]


def _all_counted() -> list[Counted]:
    return ["not_processed", "outcome_unknown", "integration_error"]


class BreakerConfig(Strict):
    fail_max: int = Field(5, ge=1, le=1000)
    reset_timeout_s: float = Field(10.0, gt=0, le=3600)
    counted: list[Counted] = Field(
        default_factory=_all_counted, description="failures that count toward opening"
    )


class AcquirerConfig(Strict):
    kind: Literal["sandbox", "stripe", "adyen", "checkout"]
    base_url: str | None = None
    embedded: bool = False
    faults: list[FaultRule] = Field(
        default_factory=list, description="fault rules for an embedded sandbox"
    )
    api_key: EnvSecret | None = None
    webhook_secret: EnvSecret | None = Field(
        None, description="Stripe endpoint secret, Adyen HMAC key (hex), Checkout.com key"
    )
    merchant_account: str | None = Field(None, description="Adyen")
    return_url: str | None = Field(None, description="Adyen: where shoppers return after 3DS")
    timeouts: Timeouts = Timeouts()
    ca_file: str | None = Field(None, description="trust this CA for the acquirer's TLS")
    tls_verify: bool = Field(True, description="may be false only for a test-mode acquirer")
    test_mode: bool = True
    weight: int = Field(1, ge=0, le=1000, description="for the weighted balancer")
    priority: int = Field(100, ge=0, le=10000, description="lower is tried first")
    health: HealthConfig = HealthConfig()
    breaker: BreakerConfig = BreakerConfig()

    @model_validator(mode="after")
    def _where(self) -> AcquirerConfig:
        if self.embedded == bool(self.base_url):
            raise ValueError("give exactly one of base_url or embedded: true")
        if self.embedded and self.kind != "sandbox":
            raise ValueError("only sandbox acquirers can be embedded")
        if self.faults and not self.embedded:
            raise ValueError("faults apply only to embedded sandbox acquirers")
        if self.kind == "sandbox" and not self.test_mode:
            raise ValueError("a sandbox acquirer is always test_mode: true")
        if not self.tls_verify and not self.test_mode:
            raise ValueError("TLS verification cannot be turned off for a live acquirer")
        if self.base_url and not re.match(r"^https?://", self.base_url):
            raise ValueError("base_url must start with http:// or https://")
        if self.kind != "sandbox" and self.api_key is None:
            raise ValueError(f"a {self.kind} acquirer needs api_key: {{env: NAME}}")
        if self.kind == "adyen" and not (self.merchant_account and self.return_url):
            raise ValueError("an adyen acquirer needs merchant_account and return_url")
        if (
            self.kind != "sandbox"
            and not self.test_mode
            and not (self.base_url or "").startswith("https://")
        ):
            raise ValueError("a live acquirer must be reached over https://")
        return self


Scope = Literal["payments:write", "payments:read", "refunds:write", "admin"]
KeyHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key")]


def _caller_scopes() -> list[Scope]:
    return ["payments:write", "payments:read", "refunds:write"]


class CallerKey(Strict):
    sha256: KeyHash
    scopes: list[Scope] = Field(default_factory=_caller_scopes, min_length=1)
    mode: Literal["test", "live"] = Field(
        "test", description="a test key reaches only test-mode acquirers, a live key only live"
    )


class CallerConfig(Strict):
    keys: list[CallerKey] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``api_key_sha256: [...]`` is short for test keys with the caller scopes."""
        if isinstance(data, dict) and "api_key_sha256" in data:
            data = dict(data)
            hashes = data.pop("api_key_sha256")
            if not isinstance(hashes, list):
                raise ValueError("api_key_sha256 must be a list of SHA-256 hex digests")
            data["keys"] = [*data.get("keys", []), *({"sha256": h} for h in hashes)]
        return data


Balancer = Literal["priority", "weighted", "least_latency", "success_rate"]


class AmountRange(Strict):
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> AmountRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("amount.min is above amount.max")
        return self


class BinRange(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: Annotated[str, Field(alias="from", pattern=r"^[0-9]{6,8}$")]
    end: Annotated[str, Field(alias="to", pattern=r"^[0-9]{6,8}$")]

    @model_validator(mode="after")
    def _ordered(self) -> BinRange:
        if len(self.start) != len(self.end) or self.start > self.end:
            raise ValueError("a BIN range needs from <= to, of the same length")
        return self

    def contains(self, bin_: str) -> bool:
        prefix = bin_[: len(self.start)]
        return len(prefix) == len(self.start) and self.start <= prefix <= self.end


class RuleMatch(Strict):
    """Every given condition must hold; an omitted one matches anything."""

    currency: list[str] | None = None
    amount: AmountRange | None = None
    card_brand: list[str] | None = None
    bin: list[BinRange] | None = None
    country: list[str] | None = None
    caller: list[str] | None = None
    payment_method: list[str] | None = Field(None, description="glob patterns on the token")


class RoutingRule(Strict):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")]
    match: RuleMatch = RuleMatch()
    pool: list[str] = Field(min_length=1)
    balancer: Balancer | None = None
    fallback: list[str] = Field(default_factory=list, description="tried after the pool")


class RoutingConfig(Strict):
    rules: list[RoutingRule] = Field(default_factory=list, description="first match wins")
    default: list[str] = Field(min_length=1, description="pool when no rule matches")
    balancer: Balancer = "priority"
    soft_decline_codes: list[str] = Field(
        default_factory=list, description="declines worth one more try at another acquirer"
    )
    max_soft_decline_retries: int = Field(1, ge=0, le=3)
    panic_threshold: float = Field(
        0.5, ge=0, le=1, description="below this healthy share, health is ignored"
    )
    exploration: float = Field(0.05, ge=0, le=1, description="success_rate balancer")


class AdminConfig(Strict):
    api_key_sha256: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(min_length=1)


class SubscriberConfig(Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    secret: EnvSecret
    events: list[str] = Field(
        default_factory=lambda: ["*"], description="globs: payment.*, refund.succeeded"
    )


class WebhooksConfig(Strict):
    subscribers: dict[str, SubscriberConfig] = Field(default_factory=dict)
    retry_window_s: float = Field(3600.0, gt=0, le=7 * 86400, description="then dead-letter")
    backoff_base_s: float = Field(1.0, gt=0, le=3600)
    backoff_max_s: float = Field(300.0, gt=0, le=86400)
    timeout_s: float = Field(5.0, gt=0, le=60)
    claim_idle_s: float = Field(
        60.0, gt=0, le=3600, description="take over deliveries a dead instance held"
    )


class PaymentsConfig(Strict):
    deadline_s: float = Field(20.0, gt=0, le=120, description="whole request, failover included")
    same_acquirer_replays: int = Field(2, ge=0, le=10)
    lease_s: float = Field(
        15.0,
        ge=1,
        le=600,
        description="renewed every lease_s/3 while the owner lives; after a crash, retries "
        "take over within one lease",
    )


class ReconcilerConfig(Strict):
    interval_s: float = Field(5.0, gt=0, le=3600)
    first_check_s: float = Field(2.0, ge=0, le=3600)
    max_backoff_s: float = Field(300.0, gt=0, le=86400)
    not_found_grace_s: float = Field(
        120.0,
        ge=0,
        le=86400,
        description="an authoritative 'never received' is trusted only this long after the "
        "attempt, when nothing can still be in flight",
    )


class Config(Strict):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    callers: dict[str, CallerConfig] = Field(min_length=1)
    acquirers: dict[str, AcquirerConfig] = Field(min_length=1)
    routing: RoutingConfig
    payments: PaymentsConfig = PaymentsConfig()
    reconciler: ReconcilerConfig = ReconcilerConfig()
    admin: AdminConfig | None = None
    webhooks: WebhooksConfig = WebhooksConfig()

    @field_validator("acquirers", "callers")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name):
                raise ValueError(f"name {name!r} must match [a-z0-9][a-z0-9_-]{{0,39}}")
        return value

    @model_validator(mode="after")
    def _references(self) -> Config:
        for name in self.routing.default:
            if name not in self.acquirers:
                raise ValueError(f"routing.default names unknown acquirer {name!r}")
        seen: set[str] = set()
        for rule in self.routing.rules:
            if rule.name in seen:
                raise ValueError(f"routing rule name {rule.name!r} is used twice")
            seen.add(rule.name)
            for name in [*rule.pool, *rule.fallback]:
                if name not in self.acquirers:
                    raise ValueError(f"routing rule {rule.name!r} names unknown acquirer {name!r}")
        return self


class ConfigError(Exception):
    """Carries (path, reason) pairs; str() is the human report."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "<config>") -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.report())

    def report(self) -> str:
        return "\n".join(f"{self.source}: {path or '(top)'}: {why}" for path, why in self.problems)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(
    text: str, source: str = "<config>", environ: dict[str, str] | None = None
) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            [(where, f"invalid YAML: {getattr(exc, 'problem', exc)}")], source
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError([("", "the config must be a YAML mapping")], source)
    try:
        resolved = _resolve_secrets(data, os.environ if environ is None else environ, "")
        return Config.model_validate(resolved)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    except ValidationError as exc:
        problems = [
            (_loc(err["loc"]), err["msg"].removeprefix("Value error, "))
            for err in exc.errors(include_url=False)
        ]
        raise ConfigError(problems, source) from None


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read file: {exc.strerror}")], str(file)) from exc
    return parse_config(text, str(file), environ)
