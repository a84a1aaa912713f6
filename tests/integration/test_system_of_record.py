"""Payments kept for their whole life: drained into PostgreSQL off the payment
path, loaded back into Redis for a capture or refund long after, listed and
exported from there (issue 13).  Real Redis and PostgreSQL processes."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.sandbox.server import SandboxServer
from router.config import Config
from router.http.app import create_app
from router.http.server import Runner
from router.ledger.drainer import GROUP, Drainer
from router.ledger.postgres.ledger import PostgresLedger
from router.ledger.postgres.migrate import migrate_url
from router.ledger.protocol import SchemaNotCurrent
from router.store.keys import DocKind, doc
from router.store.redis.store import RedisStore
from tests.conftest import RouterFactory
from tests.helpers import AUTH, eventually, headers, make_config, redis_store
from tests.procs.postgres import PostgresProcess
from tests.procs.redis import RedisProcess, cli

Client = TestClient[Any, Any]
AUTHORIZE = {"amount": 1000, "currency": "EUR", "payment_method": "tok_visa", "capture": False}
WAIT_S = 20


def _config(
    sandbox: SandboxServer, redis: RedisProcess, ledger_url: str, drain: str = "embedded"
) -> Config:
    return make_config(
        {"sandbox-a": sandbox.url},
        store=redis_store(redis.url),
        ledger={"kind": "postgres", "url": ledger_url, "timeout_s": 1, "drain": drain},
        admin={"api_key_sha256": [_sha("admin-key-0123")]},
    )


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


ADMIN = {"Authorization": "Bearer admin-key-0123"}


async def _post(client: Client, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    resp = await client.post(path, json=body, headers=headers(key))
    data: dict[str, Any] = await resp.json(content_type=None)
    assert resp.status in (200, 201), data
    return data


async def _history(client: Client, payment_id: str) -> list[tuple[str, str]]:
    resp = await client.get(f"/v1/payments/{payment_id}/events", headers=AUTH)
    assert resp.status == 200
    return [(e["object"], e["status"]) for e in (await resp.json())["data"]]


async def _backlog(client: Client) -> int:
    return int((await (await client.get("/admin/ledger", headers=ADMIN)).json())["backlog"])


async def test_a_payment_is_captured_and_refunded_after_redis_forgot_it(
    router_factory: RouterFactory,
    sandbox_factory: Any,
    redis_server: RedisProcess,
    ledger_url: str,
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(_config(sandbox, redis_server, ledger_url))
    paid = await _post(client, "/v1/payments", AUTHORIZE, "sor-1")
    assert paid["status"] == "authorized"
    assert await eventually(lambda: _backlog(client), lambda n: n == 0, seconds=WAIT_S) == 0

    cli(redis_server.port, "FLUSHALL")  # Redis forgets everything, as after the TTLs
    captured = await _post(client, f"/v1/payments/{paid['id']}/capture", {"amount": 600}, "sor-c")
    assert (captured["status"], captured["captured_amount"]) == ("captured", 600)
    refund = await _post(client, f"/v1/payments/{paid['id']}/refunds", {"amount": 250}, "sor-r")
    assert refund["status"] == "succeeded"

    got = await (await client.get(f"/v1/payments/{paid['id']}", headers=AUTH)).json()
    assert (got["status"], got["refunded_amount"]) == ("partially_refunded", 250)
    expected = [
        ("payment", "pending"),
        ("payment", "authorized"),
        ("payment", "authorized"),  # the capture journaled, before it was sent
        ("payment", "captured"),
        ("payment", "captured"),  # the refund's amount held, with the refund journaled
        ("refund", "pending"),
        ("payment", "partially_refunded"),
        ("refund", "succeeded"),
    ]

    async def history() -> list[tuple[str, str]]:
        return await _history(client, paid["id"])

    assert await eventually(history, lambda h: len(h) >= len(expected), seconds=WAIT_S) == expected
    kinds = [e["kind"] for e in sandbox.state.ledger]
    assert kinds == ["authorization", "capture", "refund"]  # each sent once


async def test_a_database_outage_slows_no_payment_and_every_event_arrives_after(
    router_factory: RouterFactory,
    sandbox_factory: Any,
    redis_server: RedisProcess,
    postgres_server: PostgresProcess,
) -> None:
    await migrate_url(postgres_server.url)
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(_config(sandbox, redis_server, postgres_server.url))
    postgres_server.kill()

    made = [
        await _post(client, "/v1/payments", {**AUTHORIZE, "capture": True}, f"o-{i}")
        for i in range(12)
    ]
    assert {p["status"] for p in made} == {"captured"}

    async def status() -> dict[str, Any]:
        return dict(await (await client.get("/admin/ledger", headers=ADMIN)).json())

    down = await eventually(status, lambda s: s["last_error"] is not None, seconds=WAIT_S)
    assert down["database"].startswith("unreachable")
    assert down["backlog"] >= len(made)

    postgres_server.start()
    assert (await eventually(status, lambda s: s["backlog"] == 0, seconds=WAIT_S))["backlog"] == 0
    ledger = await PostgresLedger.connect(postgres_server.url)
    try:
        for payment in made:
            history = await ledger.history("demo:test", payment["id"])
            assert [e.version for e in history] == [1, 2]  # journaled, then captured
    finally:
        await ledger.close()


async def test_a_drainer_that_dies_before_acknowledging_leaves_its_batch_to_another(
    redis_server: RedisProcess, ledger_url: str
) -> None:
    store = RedisStore.from_url(redis_server.url, 86_400_000)
    ledger = await PostgresLedger.connect(ledger_url)
    try:
        pid = await _one_payment(store)

        class DiesBeforeAck:
            def __init__(self, inner: RedisStore) -> None:
                self.inner = inner

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

            async def ack(self, group: str, entries: list[Any]) -> None:
                raise SystemError("killed between the database commit and the ack")

        first = Drainer(DiesBeforeAck(store), ledger, 60_000, "first")
        with pytest.raises(SystemError):
            await first.once()
        assert await store.backlog(GROUP) == 1  # applied, but not acknowledged

        second = Drainer(store, ledger, 60_000, "second", stale_ms=0, claim_every_s=0)
        assert await second.once() == 1  # taken over
        assert await store.backlog(GROUP) == 0
        assert [e.version for e in await ledger.history("demo:test", pid)] == [1]  # once
    finally:
        await ledger.close()
        await store.close()


async def _one_payment(store: RedisStore) -> str:
    """A payment committed through the store, so the outbox carries it."""
    from router.payments.records import PaymentRecord as P
    from router.payments.records import Source
    from router.payments.states import PaymentState
    from router.store.keys import shard_of
    from router.store.protocol import ChangeEvent, Commit, Write

    await store.ensure_group(GROUP)
    pid = "pay_" + "ab" * 12
    record = P(
        id=pid,
        tenant="demo:test",
        state=PaymentState.AUTHORIZED,
        amount=500,
        currency="EUR",
        capture=False,
        acquirer="sandbox-a",
        acquirer_reference="ch_1",
        version=1,
    )
    event = ChangeEvent(DocKind.PAYMENT, pid, 1, "authorized", None, Source.LIVE, 1)
    await store.commit(Commit(shard_of(pid), writes=(Write(record, 0),), events=(event,)))
    return pid


async def test_a_settled_record_leaves_redis_after_the_hot_window_and_comes_back(
    router_factory: RouterFactory,
    sandbox_factory: Any,
    redis_server: RedisProcess,
    ledger_url: str,
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    config = _config(sandbox, redis_server, ledger_url, drain="external")
    client = await router_factory(config)
    paid = await _post(client, "/v1/payments", AUTHORIZE, "hot-1")
    store = RedisStore.from_url(redis_server.url, 86_400_000)
    ledger = await PostgresLedger.connect(ledger_url)
    try:
        drainer = Drainer(store, ledger, hot_window_ms=300, consumer="test")
        assert await drainer.once() == 2  # journaled + authorized
        key = doc(DocKind.PAYMENT, paid["id"])
        assert 0 < int(cli(redis_server.port, "PTTL", key)) <= 300

        async def in_redis() -> bool:
            return int(cli(redis_server.port, "EXISTS", key)) == 1

        assert await eventually(in_redis, lambda there: not there, seconds=WAIT_S) is False
        captured = await _post(client, f"/v1/payments/{paid['id']}/capture", {}, "hot-c")
        assert captured["status"] == "captured"
        back = await store.get_payment(paid["id"])
        assert back is not None
        assert back.version == 4  # put back at version 2, then journaled and settled
    finally:
        await ledger.close()
        await store.close()


async def test_a_router_will_not_start_on_a_schema_that_lags(
    sandbox_factory: Any, redis_server: RedisProcess, fresh_database: str
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    app = create_app(_config(sandbox, redis_server, fresh_database), background=False)
    runner = Runner(app, app_config(app).server)
    with pytest.raises(SchemaNotCurrent, match="payrouter db migrate"):
        await runner.setup()
    await runner.cleanup()


def app_config(app: Any) -> Config:
    from router.http.keys import CONFIG

    config: Config = app[CONFIG]
    return config
