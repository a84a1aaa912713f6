"""Whatever the database driver raises, the API answers a retryable 503
(ledger_unavailable), never a 500: the chaos run that SIGKILLs PostgreSQL
under load found a driver error outside the mapped classes."""

from __future__ import annotations

import asyncpg
import pytest

from router.ledger.postgres.ledger import _boundary
from router.ledger.protocol import LedgerUnavailable


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.PostgresError("terminating connection due to administrator command"),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_every_driver_and_socket_error_is_ledger_unavailable(error: Exception) -> None:
    with pytest.raises(LedgerUnavailable):
        async with _boundary():
            raise error
