"""The acquirers' API descriptions the tests check against, from tests/fixtures.

The extracts are part of the repository (``tests/fixtures/make_extracts.py``
rebuilds them); a missing one is an error, never a skip.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@functools.cache
def extract(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def adyen() -> dict[str, Any]:
    return extract("adyen-checkout-v71.extract.json")


def stripe() -> dict[str, Any]:
    return extract("stripe-2022-04-12.extract.json")


def checkout() -> dict[str, Any]:
    return extract("checkout-nas-2021.extract.json")


def adyen_hmac_vectors() -> list[Path]:
    return sorted((FIXTURES / "adyen-hmac-vectors").glob("*.json"))
