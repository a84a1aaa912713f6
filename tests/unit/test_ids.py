"""Derived ids are a contract across releases: during a rolling deploy, or after
a store failover, a retry reaching a newer instance must derive the very
payment id and acquirer key the older one used, or a lost record would be
charged again under a new acquirer key."""

from __future__ import annotations

from router.store.ids import Ids

SECRET = "s3cret-0123456789abcdef"
DAY_MS = 86_400_000


def test_payment_ids_acquirer_keys_and_fingerprints_never_change_between_releases() -> None:
    ids = Ids(SECRET, DAY_MS)
    assert ids.payment_id("t", "k", 5) == "pay_d63b056799a37269897ae001"
    assert ids.payment_id("t", "k", 5, Ids.scope("t", "k")) == "pay_d63b056799a37269897ae001"
    assert ids.acquirer_key("pay_x", "sale", "a") == (
        "pr_9bc648449a0d93cab249e5f76de341b65de11430e5d071c5"
    )
    assert ids.fingerprint("POST", "/v1", {"b": 1, "a": 2}) == (
        "0681a37880438890db4192b7df3fd9f6378807638f8d45aaf157ce83388e6897"
    )


def test_a_fingerprint_ignores_key_order() -> None:
    ids = Ids(SECRET, DAY_MS)
    assert ids.fingerprint("POST", "/v1", {"a": 2, "b": 1}) == ids.fingerprint(
        "POST", "/v1", {"b": 1, "a": 2}
    )
