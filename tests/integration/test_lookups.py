"""Lookups internal services need: lists with filters and cursors, a payment's
history, the ledger export; each scoped to its caller (issue 13)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient

from router.config import DEMO_CONFIG, load_config
from router.http.keys import RUNTIME
from router.ledger.export import write_csv
from tests.conftest import RouterFactory
from tests.helpers import AUTH, OTHER_AUTH, ROOT, eventually, headers, make_config
from tests.procs.redis import RedisProcess

Client = TestClient[Any, Any]
WAIT_S = 10


async def _pay(client: Client, key: str, auth: dict[str, str] = AUTH, **body: Any) -> str:
    sale = {"amount": 1000, "currency": "EUR", "payment_method": "tok_visa", **body}
    resp = await client.post("/v1/payments", json=sale, headers=headers(key, auth))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def _listed(client: Client, query: str, auth: dict[str, str] = AUTH) -> dict[str, Any]:
    resp = await client.get(f"/v1/payments{query}", headers=auth)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _drained(client: Client, count: int, query: str = "?limit=100") -> None:
    async def listed() -> int:
        return len((await _listed(client, query))["data"])

    assert await eventually(listed, lambda n: n >= count, seconds=WAIT_S) == count


async def test_the_readme_flow_on_the_demo_config(router_factory: RouterFactory) -> None:
    """What a new user does after `make run`: pay, capture, refund, look it up."""
    client = await router_factory(load_config(DEMO_CONFIG))
    body = {"amount": 1299, "currency": "EUR", "payment_method": "tok_visa", "capture": False}
    paid = await (
        await client.post(
            "/v1/payments",
            json={**body, "merchant_reference": "order-1001"},
            headers=headers("order-1001"),
        )
    ).json()
    await client.post(
        f"/v1/payments/{paid['id']}/capture", json={"amount": 1000}, headers=headers("capture-1001")
    )
    await client.post(
        f"/v1/payments/{paid['id']}/refunds", json={"amount": 250}, headers=headers("refund-1001")
    )

    async def history() -> list[str]:
        resp = await client.get(f"/v1/payments/{paid['id']}/events", headers=AUTH)
        return [f"{e['object']}:{e['status']}" for e in (await resp.json())["data"]]

    final = await eventually(history, lambda h: h[-1:] == ["refund:succeeded"], seconds=WAIT_S)
    assert final[0] == "payment:pending"
    assert "payment:partially_refunded" in final
    found = await _listed(client, "?merchant_reference=order-1001")
    assert [p["id"] for p in found["data"]] == [paid["id"]]
    assert found["data"][0]["status"] == "partially_refunded"

    ledger = client.app[RUNTIME].current.ledger
    assert ledger is not None
    out = io.StringIO()
    assert await write_csv(ledger, out, 0, 10**13) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["kind"], r["amount"], r["amount_decimal"]) for r in rows] == [
        ("authorization", "1299", "12.99"),
        ("capture", "1000", "10.00"),
        ("refund", "250", "2.50"),
    ]


async def test_lists_filter_page_and_never_show_another_callers_payments(
    router_factory: RouterFactory, sandbox_factory: Any
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    client = await router_factory(
        make_config({"sandbox-a": sandbox.url}, ledger={"kind": "memory"})
    )
    mine = [await _pay(client, f"l-{i}", merchant_reference=f"ref-{i % 2}") for i in range(5)]
    declined = await _pay(client, "l-d", payment_method="tok_decline_insufficient_funds")
    theirs = await _pay(client, "l-o", OTHER_AUTH, merchant_reference="ref-0")
    await _drained(client, 6)

    pages: list[str] = []
    query = "?limit=2"
    while True:
        page = await _listed(client, query)
        pages += [p["id"] for p in page["data"]]
        if page["next_cursor"] is None:
            break
        query = f"?limit=2&cursor={page['next_cursor']}"
    assert sorted(pages) == sorted([*mine, declined])
    assert theirs not in pages

    refs = await _listed(client, "?merchant_reference=ref-0&limit=100")
    assert {p["id"] for p in refs["data"]} == {mine[0], mine[2], mine[4]}
    status = await _listed(client, "?status=declined&status=failed")
    assert [p["id"] for p in status["data"]] == [declined]
    later = await _listed(client, "?created_from=2099-01-01T00:00:00Z")
    assert later["data"] == []
    other = await _listed(client, "?limit=100", OTHER_AUTH)
    assert [p["id"] for p in other["data"]] == [theirs]


async def test_lookups_refuse_what_they_cannot_answer(
    router_factory: RouterFactory, sandbox_factory: Any
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    with_ledger = await router_factory(
        make_config({"sandbox-a": sandbox.url}, ledger={"kind": "memory"})
    )
    for query, code in [
        ("?cursor=bm90LWEtY3Vyc29y", "invalid_request"),
        ("?limit=0", "invalid_request"),
        ("?status=shipped", "invalid_request"),
        ("?created_from=yesterday", "invalid_request"),
        ("?limit=5&limit=6", "invalid_request"),
        ("?colour=blue", "invalid_request"),
    ]:
        resp = await with_ledger.get(f"/v1/payments{query}", headers=AUTH)
        assert (resp.status, (await resp.json())["code"]) == (400, code), query
    theirs = await _pay(with_ledger, "x-1", OTHER_AUTH)
    resp = await with_ledger.get(f"/v1/payments/{theirs}/events", headers=AUTH)
    assert resp.status == 404

    without = await router_factory(make_config({"sandbox-a": sandbox.url}))
    resp = await without.get("/v1/payments", headers=AUTH)
    assert (resp.status, (await resp.json())["code"]) == (404, "ledger_not_configured")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


async def test_db_migrate_and_ledger_export_from_the_command_line(
    tmp_path: Path,
    router_factory: RouterFactory,
    sandbox_factory: Any,
    redis_server: RedisProcess,
    fresh_database: str,
) -> None:
    sandbox = await sandbox_factory("sandbox-a")
    config_file = tmp_path / "router.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "store": {
                    "kind": "redis",
                    "url": redis_server.url,
                    "id_secret": {"env": "PAYROUTER_ID_SECRET"},
                },
                "ledger": {"kind": "postgres", "url": fresh_database},
                "callers": {"demo": {"api_key_sha256": [_sha("sk_test_demo")]}},
                "acquirers": {"sandbox-a": {"kind": "sandbox", "base_url": sandbox.url}},
                "routing": {"default": ["sandbox-a"]},
            }
        )
    )
    env = {"PAYROUTER_ID_SECRET": "test-id-secret-0123456789abcdef"}
    migrated = _cli("db", "migrate", "--config", str(config_file), env=env)
    assert (migrated.returncode, migrated.stdout.strip()) == (0, "applied: 0001_system_of_record")
    again = _cli("db", "migrate", "--config", str(config_file), env=env)
    assert again.stdout.strip() == "the schema is current"

    config = make_config(
        {"sandbox-a": sandbox.url},
        store={"kind": "redis", "url": redis_server.url},
        ledger={"kind": "postgres", "url": fresh_database},
    )
    client = await router_factory(config)
    await _pay(client, "cli-1")
    await _pay(client, "cli-2", capture=False)
    await _drained(client, 2)

    out = tmp_path / "movements.csv"
    exported = _cli(
        "ledger",
        "export",
        "--config",
        str(config_file),
        "--from",
        "2000-01-01",
        "--to",
        "2099-12-31",
        "--output",
        str(out),
        env=env,
    )
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr.strip() == "3 movements"
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["kind"] for r in rows) == ["authorization", "authorization", "capture"]
    assert {r["acquirer"] for r in rows} == {"sandbox-a"}
    assert all(r["acquirer_reference"] for r in rows)

    bad = _cli(
        "ledger", "export", "--config", str(config_file), "--from", "June", "--to", "x", env=env
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


async def test_a_query_parameter_without_a_name_is_refused(
    router_factory: RouterFactory,
) -> None:
    client = await router_factory(load_config(DEMO_CONFIG))
    resp = await client.get("/v1/payments?=", headers=AUTH)
    assert (resp.status, (await resp.json())["code"]) == (400, "invalid_request")
