"""Caller authentication: API keys kept only as SHA-256 hashes in config.

Every configured hash is compared (constant time, no early exit), so the
time taken does not tell an attacker which caller, if any, came close.  The
``Bearer`` scheme is matched without regard to case (RFC 7235).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from router.config import Config
from router.payments.context import Caller
from router.problems import Problem


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _bearer(authorization: str | None) -> str | None:
    """The credential of ``Bearer <credential>``, any case of the scheme."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def _matches(presented: bytes, hashes: list[str]) -> bool:
    hit = False
    for stored in hashes:  # no early exit
        hit |= hmac.compare_digest(presented, stored.encode())
    return hit


def _require(hashes: list[str], authorization: str | None, realm: str) -> None:
    credential = _bearer(authorization)
    if credential is None:
        raise Problem(
            401,
            "unauthenticated",
            f"send Authorization: Bearer <{realm} key>",
            headers={"WWW-Authenticate": f'Bearer realm="payrouter-{realm}"'},
        )
    if not _matches(hash_key(credential).encode(), hashes):
        raise Problem(403, "forbidden", f"this key may not use the {realm} API")


def authenticate_admin(config: Config, authorization: str | None) -> None:
    """The admin API has its own credentials: the admin keys, or caller keys
    given the ``admin`` scope.  A payments key never opens it."""
    admin_keys = list(config.admin.api_key_sha256) if config.admin else []
    scoped = [k.sha256 for c in config.callers.values() for k in c.keys if "admin" in k.scopes]
    if not admin_keys and not scoped:
        raise Problem(404, "not_found", "the admin API is not enabled in this config")
    _require(admin_keys + scoped, authorization, "admin")


def authenticate_metrics(config: Config, authorization: str | None) -> None:
    """``/metrics`` is open only when the config gives it no keys (a test or
    demo config, or one that serves it on a port of its own)."""
    keys = list(config.server.metrics.api_key_sha256)
    if keys:
        _require(keys, authorization, "metrics")


@dataclass(frozen=True)
class Principal:
    caller: Caller
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Problem(
                403,
                "insufficient_scope",
                f"this API key lacks the {scope} scope",
                required_scope=scope,
            )


def authenticate(config: Config, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization: Bearer <key>`` header."""
    credential = _bearer(authorization)
    if credential is None:
        raise Problem(
            401,
            "unauthenticated",
            "send Authorization: Bearer <api key>",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter"'},
        )
    presented = hash_key(credential).encode()
    found: Principal | None = None
    for name, settings in config.callers.items():
        for key in settings.keys:  # every key is compared: no early exit
            if hmac.compare_digest(presented, key.sha256.encode()):
                found = Principal(Caller(name, key.mode == "live"), frozenset(key.scopes))
    if found is None:
        raise Problem(
            401,
            "invalid_api_key",
            "the API key is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter", error="invalid_token"'},
        )
    return found
