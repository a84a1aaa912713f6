"""Versioned schema migrations: numbered SQL files, applied in order, once.

``payrouter db migrate`` applies what is missing, each file in its own
transaction under an advisory lock (two instances migrating at once take
turns); the router checks at start-up that nothing is missing.  A file that
was changed after it was applied is refused: the database would not be what
the files say.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from router.ledger.protocol import SchemaNotCurrent

Conn = asyncpg.Connection | PoolConnectionProxy

#: pg_advisory_xact_lock key: "payrouter" in ASCII, as a bigint
_LOCK = 0x7061_7972_6F75_7465

_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The files in ``migrations/``: ``NNNN_name.sql``."""
    found = []
    for entry in resources.files("router.ledger.postgres").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def _applied(conn: Conn, *, create: bool) -> dict[int, str]:
    if create:
        await conn.execute(_TABLE)
    elif await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {int(row["version"]): str(row["checksum"]) for row in rows}


def _edited(applied: dict[int, str]) -> list[str]:
    return [
        f"{m.version:04d}_{m.name}"
        for m in migrations()
        if m.version in applied and applied[m.version] != m.checksum
    ]


async def migrate(conn: Conn) -> list[str]:
    """Apply every missing migration; returns their names."""
    done: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        applied = await _applied(conn, create=True)
        edited = _edited(applied)
        if edited:
            raise SchemaNotCurrent(f"migrations changed after they were applied: {edited}")
        for migration in migrations():
            if migration.version in applied:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            done.append(f"{migration.version:04d}_{migration.name}")
    return done


async def check(conn: Conn) -> None:
    """Raise SchemaNotCurrent unless every migration is applied, unchanged."""
    applied = await _applied(conn, create=False)
    missing = [f"{m.version:04d}_{m.name}" for m in migrations() if m.version not in applied]
    if missing:
        raise SchemaNotCurrent(
            f"the database lacks migrations {missing}: run `payrouter db migrate --config FILE`"
        )
    edited = _edited(applied)
    if edited:
        raise SchemaNotCurrent(f"migrations changed after they were applied: {edited}")


async def migrate_url(dsn: str, password: str | None = None) -> list[str]:
    """``payrouter db migrate``: connect, apply what is missing, disconnect."""
    conn = await asyncpg.connect(dsn, password=password)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
