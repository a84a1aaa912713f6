"""Configuration: YAML validated by pydantic, secrets only from the environment.

A secret field in the YAML is written ``{env: NAME}``; a literal value there is
refused, so a config file can be committed and shared without leaking keys,
and an empty or short value is refused naming the field.  Each acquirer's
section is validated by the settings model of its ``kind`` (see
``adapters/registry.py``).  Every error names the file, the dotted path inside
it and the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)

from adapters.forwarding import VaultSettings
from adapters.registry import CONNECTORS, AnySettings
from adapters.settings import EnvSecret, SigningKey
from router.known_keys import is_known_key_hash
from router.routing.rules import RoutingConfig

#: the embedded demo (config/demo.yaml, shipped inside the package as
#: router/demo.yaml, a link to it, so ``payrouter serve`` works installed)
DEMO_CONFIG = Path(__file__).parent / "demo.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def _hash_from_env(value: Any) -> Any:
    """A key hash may come from the environment like a secret (``{env: NAME}``),
    so deployment files need not carry any."""
    if isinstance(value, dict) and set(value) == {"env", "value"}:
        return value["value"]
    return value


KeyHash = Annotated[
    str,
    BeforeValidator(_hash_from_env),
    Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, or {env: NAME} holding it"),
]


class MetricsEndpoint(Strict):
    port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics on this port only, not beside the API"
    )
    api_key_sha256: list[KeyHash] = Field(
        default_factory=list, description="require Authorization: Bearer <key> for /metrics"
    )

    @property
    def public_beside_api(self) -> bool:
        return self.port is None and not self.api_key_sha256


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024)
    tls: TlsListener | None = Field(None, description="serve HTTPS with this certificate")
    watch_config_s: float = Field(
        2.0, ge=0, le=3600, description="poll the config file for changes; 0 turns it off"
    )
    shutdown_drain_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="on SIGTERM, /readyz answers 503 and requests are still served this long "
        "(while the load balancer takes the instance out), before the listener closes",
    )
    shutdown_timeout_s: float = Field(
        30.0,
        ge=0,
        le=600,
        description="after the listener closes, how long requests in flight may take to finish",
    )
    tracing: Literal["off", "otlp"] = Field(
        "off",
        description="otlp: OpenTelemetry spans per request and acquirer attempt, exported over "
        "OTLP/HTTP (OTEL_EXPORTER_OTLP_* settings; needs the otel extra)",
    )
    fleet_poll_s: float = Field(
        0.5,
        gt=0,
        le=30,
        description="how often every worker reads the fleet's operator state (drains, "
        "reload requests) from the store and reports what it applied",
    )
    header_timeout_s: float = Field(
        10.0,
        ge=0.5,
        le=300,
        description="a request line and its headers must arrive within this after the "
        "connection opens or the previous answer; idle connections close after it too",
    )
    body_timeout_s: float = Field(
        10.0, ge=0.5, le=300, description="a request body must arrive within this, else 408"
    )
    max_connections: int = Field(
        1024, ge=1, le=100_000, description="beyond this, a new connection gets 503 and is closed"
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="X-Forwarded-For is believed only when the peer is one of these",
    )
    metrics: MetricsEndpoint = MetricsEndpoint()


class Durability(Strict):
    replicas: int = Field(
        0,
        ge=0,
        le=16,
        description="replicas that must acknowledge (WAIT) a journal write before money moves "
        "and before answering; 0 trusts the primary's own persistence (AOF fsync always)",
    )
    timeout_ms: int = Field(500, ge=1, le=10_000, description="how long WAIT may take")


class StoreConfig(Strict):
    kind: Literal["memory", "redis"] = "memory"
    url: str | None = Field(
        None, description="redis://, rediss://, redis+sentinel://, redis+cluster://"
    )
    password: EnvSecret | None = None
    id_secret: SigningKey | None = Field(
        None,
        description="keys the derivation of payment ids and acquirer idempotency keys; every "
        "instance must share it (a memory store draws one when it starts)",
    )
    ttl_s: int = Field(
        24 * 3600, ge=60, le=30 * 24 * 3600, description="idempotency window: keys expire after"
    )
    record_ttl_s: int = Field(
        30 * 24 * 3600,
        ge=3600,
        le=400 * 24 * 3600,
        description="payments and refunds not yet in the system of record stay this long",
    )
    hot_window_s: int = Field(
        24 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="once in the system of record, records stay in the store this long",
    )
    op_timeout_s: float = Field(1.0, gt=0, le=30)
    durability: Durability = Durability()
    failover_check_s: float = Field(
        600.0,
        ge=0,
        le=86_400,
        description="after a detected store failover or restart, for this long a new payment "
        "is looked up at acquirers that can tell before it is sent anywhere",
    )

    @model_validator(mode="after")
    def _redis_needs(self) -> StoreConfig:
        if self.kind == "redis" and not self.url:
            raise ValueError("store.url is required when kind is redis")
        if self.kind == "redis" and self.id_secret is None:
            raise ValueError(
                "store.id_secret is required when kind is redis: every instance must "
                "derive the same ids ({env: NAME})"
            )
        if self.durability.replicas and self.durability.timeout_ms >= self.op_timeout_s * 1000:
            raise ValueError("store.durability.timeout_ms must be below store.op_timeout_s")
        return self


Scope = Literal["payments:write", "payments:read", "refunds:write", "admin"]


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
    allow_from: list[IPvAnyNetwork] | None = Field(
        None, description="CIDRs this caller may call from (default: anywhere)"
    )

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


class AdminConfig(Strict):
    api_key_sha256: list[KeyHash] = Field(min_length=1)
    allow_from: list[IPvAnyNetwork] | None = Field(
        None, description="CIDRs the admin API may be called from (default: anywhere)"
    )


class SubscriberConfig(Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    secret: SigningKey
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
        ge=0.2,
        le=600,
        description="renewed every lease_s/3 while the owner lives; after a crash, retries "
        "take over within one lease",
    )


class ReconcilerConfig(Strict):
    interval_s: float = Field(5.0, gt=0, le=3600)
    first_check_s: float = Field(2.0, ge=0, le=3600)
    max_backoff_s: float = Field(300.0, gt=0, le=86400)
    pending_expiry_s: float = Field(
        86_400.0,
        ge=1,
        le=30 * 86_400,
        description="a payment still waiting for the shopper (3-D Secure) after this is given "
        "up at acquirers that can cancel it; at others it waits for their webhook",
    )
    not_found_grace_s: float = Field(
        120.0,
        ge=0,
        le=86400,
        description="an authoritative 'never received' is trusted only this long after the "
        "attempt, when nothing can still be in flight",
    )


class LedgerConfig(Strict):
    """The system of record: every payment and refund for its whole life."""

    kind: Literal["memory", "postgres"] = Field(
        description="postgres; memory keeps it in the process (the demo, one instance)"
    )
    url: str | None = Field(None, description="postgresql://user@host:5432/db")
    password: EnvSecret | None = None
    pool_size: int = Field(4, ge=1, le=100)
    timeout_s: float = Field(5.0, gt=0, le=60, description="connect and per-statement bound")
    retention_days: int = Field(
        7 * 365, ge=1, le=100 * 365, description="settled payments are forgotten after this"
    )
    drain: Literal["embedded", "external"] = Field(
        "embedded",
        description="embedded: the router drains the outbox; external: `payrouter drain` does",
    )
    batch: int = Field(500, ge=1, le=10_000, description="record versions per transaction")
    claim_idle_s: float = Field(
        30.0, ge=0.5, le=3600, description="take over a batch a dead drainer held this long"
    )

    @model_validator(mode="after")
    def _where(self) -> LedgerConfig:
        if self.kind == "postgres" and not (self.url or "").startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("ledger.url must be a postgresql:// URL when kind is postgres")
        if self.kind == "memory" and self.drain == "external":
            raise ValueError("a memory ledger lives in the router: it cannot be drained outside")
        return self


class Config(Strict):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    callers: dict[str, CallerConfig] = Field(min_length=1)
    acquirers: dict[str, AnySettings] = Field(min_length=1)
    routing: RoutingConfig
    payments: PaymentsConfig = PaymentsConfig()
    reconciler: ReconcilerConfig = ReconcilerConfig()
    admin: AdminConfig | None = None
    webhooks: WebhooksConfig = WebhooksConfig()
    ledger: LedgerConfig | None = Field(
        None, description="the system of record; without one, records live store.record_ttl_s"
    )
    vaults: dict[str, VaultSettings] = Field(
        default_factory=dict, description="card vaults that forward card requests to acquirers"
    )

    @field_validator("acquirers", "callers", "vaults")
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

    @model_validator(mode="after")
    def _vault_destinations(self) -> Config:
        for name, vault in self.vaults.items():
            for acquirer in vault.acquirers:
                if acquirer not in self.acquirers:
                    raise ValueError(f"vaults.{name}.acquirers names unknown acquirer {acquirer!r}")
        return self

    @model_validator(mode="after")
    def _ledger_fits_the_store(self) -> Config:
        if self.ledger and self.ledger.kind == "memory" and self.store.kind == "redis":
            raise ValueError(
                "ledger.kind memory forgets everything when the process stops; with a shared "
                "Redis store use kind: postgres"
            )
        return self

    @property
    def live(self) -> bool:
        """Real money can move: a live acquirer or a live caller key exists."""
        return any(not a.test_mode for a in self.acquirers.values()) or any(
            key.mode == "live" for caller in self.callers.values() for key in caller.keys
        )

    def key_hashes(self) -> list[tuple[str, str]]:
        """Every accepted key hash with the path that names it."""
        found = [
            (f"callers.{name}.keys[{i}].sha256", key.sha256)
            for name, caller in self.callers.items()
            for i, key in enumerate(caller.keys)
        ]
        admin = self.admin.api_key_sha256 if self.admin else []
        found += [(f"admin.api_key_sha256[{i}]", h) for i, h in enumerate(admin)]
        metrics = self.server.metrics.api_key_sha256
        return found + [(f"server.metrics.api_key_sha256[{i}]", h) for i, h in enumerate(metrics)]

    @model_validator(mode="after")
    def _safe_for_live(self) -> Config:
        """A live config may not open with a key everybody knows, nor show its
        metrics to whoever can reach the API."""
        if not self.live:
            return self
        for path, sha256 in self.key_hashes():
            if is_known_key_hash(sha256):
                raise ValueError(
                    f"{path}: a live config may not accept a known key (the demo's or a "
                    "common word); make a new random key"
                )
        if self.server.metrics.public_beside_api:
            raise ValueError(
                "server.metrics: a live config may not serve /metrics publicly beside the "
                "API; give server.metrics.port or server.metrics.api_key_sha256"
            )
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
    for index, part in enumerate(loc):
        if index == 2 and loc[0] == "acquirers" and part in CONNECTORS:
            continue  # pydantic's name for the union member, not a place in the file
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
