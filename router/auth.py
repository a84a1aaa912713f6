"""Caller authentication: API keys kept only as SHA-256 hashes in config.

Every configured hash is compared (constant time, no early exit), so the
time taken does not tell an attacker which caller, if any, came close.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from router.config import Config
from router.problems import Problem


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _presented(authorization: str) -> bytes:
    return hash_key(authorization.removeprefix("Bearer ").strip()).encode()


def _matches(presented: bytes, hashes: list[str]) -> bool:
    hit = False
    for stored in hashes:  # no early exit
        hit |= hmac.compare_digest(presented, stored.encode())
    return hit


def authenticate_admin(config: Config, authorization: str | None) -> None:
    """The admin API has its own credentials: the admin keys, or caller keys
    given the ``admin`` scope.  A payments key never opens it."""
    admin_keys = list(config.admin.api_key_sha256) if config.admin else []
    scoped = [k.sha256 for c in config.callers.values() for k in c.keys if "admin" in k.scopes]
    if not admin_keys and not scoped:
        raise Problem(404, "not_found", "the admin API is not enabled in this config")
    if not authorization or not authorization.startswith("Bearer "):
        raise Problem(
            401,
            "unauthenticated",
            "send Authorization: Bearer <admin key>",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter-admin"'},
        )
    if not _matches(_presented(authorization), admin_keys + scoped):
        raise Problem(403, "forbidden", "this key may not use the admin API")


@dataclass(frozen=True)
class Principal:
    caller: str
    scopes: frozenset[str]
    live: bool

    @property
    def tenant(self) -> str:
        """Who owns records and idempotency keys: test and live never mix."""
        return self.caller if self.live else f"{self.caller}:test"

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
    if not authorization or not authorization.startswith("Bearer "):
        raise Problem(
            401,
            "unauthenticated",
            "send Authorization: Bearer <api key>",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter"'},
        )
    presented = _presented(authorization)
    found: Principal | None = None
    for caller, settings in config.callers.items():
        for key in settings.keys:  # every key is compared: no early exit
            if hmac.compare_digest(presented, key.sha256.encode()):
                found = Principal(caller, frozenset(key.scopes), key.mode == "live")
    if found is None:
        raise Problem(
            401,
            "invalid_api_key",
            "the API key is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter", error="invalid_token"'},
        )
    return found
