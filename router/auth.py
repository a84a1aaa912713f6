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


def authenticate(config: Config, authorization: str | None) -> str:
    """Return the caller id for an ``Authorization: Bearer <key>`` header."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Problem(
            401,
            "unauthenticated",
            "send Authorization: Bearer <api key>",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter"'},
        )
    presented = hash_key(authorization.removeprefix("Bearer ").strip()).encode()
    found: str | None = None
    for caller, settings in config.callers.items():
        for stored in settings.api_key_sha256:
            if hmac.compare_digest(presented, stored.encode()):
                found = caller
    if found is None:
        raise Problem(
            401,
            "invalid_api_key",
            "the API key is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="payrouter", error="invalid_token"'},
        )
    return found
