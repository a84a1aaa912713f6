"""The store over TLS (``rediss://``): payments go through, the payment path's
pipelined connection speaks TLS itself, and a server whose certificate the
configured CA did not sign is refused before anything is sent, by redis-py
and by the pipelined connection alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.exceptions as rexc
import trustme

from adapters.sandbox.server import SandboxServer
from router.store.protocol import StoreUnavailable
from router.store.redis.client import pipelined_from_url
from router.store.redis.group_commit import GroupCommitClient
from router.store.redis.multiplexed import MultiplexedClient
from router.store.redis.store import RedisStore
from tests.conftest import RouterFactory
from tests.helpers import charges_by_reference, headers, make_config
from tests.procs.redis import RedisProcess

pytestmark = pytest.mark.redis

SALE = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa"}


async def test_payments_go_through_a_store_reached_over_tls(
    router_factory: RouterFactory,
    tls_redis: RedisProcess,
    two_sandboxes: tuple[SandboxServer, SandboxServer],
) -> None:
    a, b = two_sandboxes
    config = make_config(
        {s.state.name: s.url for s in (a, b)},
        store={"kind": "redis", "url": tls_redis.tls_url, "op_timeout_s": 1.0},
    )
    client = await router_factory(config)
    ids = []
    for n in range(3):
        resp = await client.post("/v1/payments", json=SALE, headers=headers(f"tls-{n}"))
        body = await resp.json()
        assert (resp.status, body["status"]) == (201, "captured")
        ids.append(body["id"])
    again = await client.post("/v1/payments", json=SALE, headers=headers("tls-0"))
    assert again.headers["Idempotent-Replayed"] == "true"
    sandboxes = ({"events": s.state.ledger} for s in (a, b))
    assert charges_by_reference(*sandboxes) == dict.fromkeys(ids, 1)


async def test_a_server_the_configured_ca_did_not_sign_is_refused(
    tls_redis: RedisProcess, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    url = tls_redis.tls_url.replace(str(tls_redis.ca_file), str(other))
    store = RedisStore.from_url(url, ttl_ms=60_000)
    try:
        with pytest.raises(StoreUnavailable, match="certificate verify failed"):
            await store.get_payment("pay_" + "0" * 24)
    finally:
        await store.close()


def test_the_payment_path_speaks_tls_itself_unless_the_url_says_more_than_it_knows(
    tls_redis: RedisProcess,
) -> None:
    assert isinstance(pipelined_from_url(tls_redis.tls_url), MultiplexedClient)
    waited = pipelined_from_url(tls_redis.tls_url, replicas=1)
    assert isinstance(waited, GroupCommitClient)
    # an option redis-py knows and the pipelined client does not: the URL is redis-py's
    assert pipelined_from_url(tls_redis.tls_url + "&socket_keepalive=true") is None


async def test_the_payment_paths_tls_refuses_a_server_the_configured_ca_did_not_sign(
    tls_redis: RedisProcess, tmp_path: Path
) -> None:
    trusted = pipelined_from_url(tls_redis.tls_url)
    assert trusted is not None
    assert await trusted.execute("PING") == "PONG"
    await trusted.aclose()
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    refused = pipelined_from_url(tls_redis.tls_url.replace(str(tls_redis.ca_file), str(other)))
    assert refused is not None
    with pytest.raises(rexc.ConnectionError, match="certificate verify failed"):
        await refused.execute("PING")
    await refused.aclose()
