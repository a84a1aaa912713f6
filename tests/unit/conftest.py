"""Unit-test fixtures.

aioresponses 0.7.x builds ``ClientResponse`` without the ``stream_writer``
argument aiohttp 3.14 requires (pnuckowski/aioresponses#289, still open).
aiohttp 3.14 is a security release, so instead of pinning it back we hand
aioresponses a ClientResponse that supplies a finished, empty writer.
"""

from __future__ import annotations

import inspect
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse


class _SentWriter:
    output_size = 0


class _CompatClientResponse(ClientResponse):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentWriter())
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def _aioresponses_on_aiohttp_314(monkeypatch: pytest.MonkeyPatch) -> None:
    if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
        monkeypatch.setattr(aioresponses.core, "ClientResponse", _CompatClientResponse)
