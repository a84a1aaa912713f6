"""Caller authentication: API keys kept only as SHA-256 hashes in config.

Every configured hash is compared (constant time, no early exit), so the
time taken does not tell an attacker which caller, if any, came close.
"""

from __future__ import annotations

import hashlib
import hmac

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
    """The admin API has its own credential; a caller key never opens it."""
    if config.admin is None:
        raise Problem(404, "not_found", "the admin API is not enabled in this config")
    if not authorization or not authorization.startswith("Bearer "):
        raise Problem(
            401,
            "unauthenticated",
            "send Authorization: Bearer <admin key>",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter-admin"'},
        )
    if not _matches(_presented(authorization), config.admin.api_key_sha256):
        raise Problem(403, "forbidden", "this key may not use the admin API")


def authenticate(config: Config, authorization: str | None) -> str:
    """Return the caller id for an ``Authorization: Bearer <key>`` header."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Problem(
            401,
            "unauthenticated",
            "send Authorization: Bearer <api key>",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter"'},
        )
    presented = _presented(authorization)
    found: str | None = None
    for caller, settings in config.callers.items():
        if _matches(presented, settings.api_key_sha256):
            found = caller
    if found is None:
        raise Problem(
            401,
            "invalid_api_key",
            "the API key is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter", error="invalid_token"'},
        )
    return found
