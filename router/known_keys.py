"""API keys everybody knows, which a live config must not accept.

The demo's key is printed in the README, and the weak words below are the
first an attacker tries; a live config that admits one of them (as a caller,
admin or metrics key) is refused at load time, naming the field.  Only
hashes are compared: configs hold nothing else.
"""

from __future__ import annotations

import hashlib

#: the demo config's caller key (README quick start); keep in sync with config/demo.yaml
DEMO_API_KEY = "sk_test_demo"

_WEAK = (
    "",
    "foo",
    "bar",
    "baz",
    "test",
    "testing",
    "secret",
    "password",
    "changeme",
    "change-me",
    "admin",
    "demo",
    "example",
    "key",
    "apikey",
    "api_key",
    "letmein",
    "123456",
    "12345678",
    "sk_test",
    "sk_live",
    "sk_live_demo",
    "sk_admin_demo",
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


KNOWN_KEY_HASHES = frozenset(_sha256(key) for key in (DEMO_API_KEY, *_WEAK))


def is_known_key_hash(sha256: str) -> bool:
    return sha256 in KNOWN_KEY_HASHES
