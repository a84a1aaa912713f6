"""A sandbox process of its own keeps its ever-growing books out of the
cyclic collector, so a full collection never walks every charge ever made
(a stall that latency figures measured through it would blame on the router)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT

#: run in a process of its own: freezing would change this test process's collector
SCRIPT = """
import gc, json, sys
from adapters.sandbox.server import FREEZE_FLOOR, keep_books_out_of_the_collector

keep_books_out_of_the_collector()
before = gc.get_freeze_count()
books = [{"charge": i, "events": [i]} for i in range(int(float(sys.argv[1]) * FREEZE_FLOOR / 2))]

class Cycle:
    pass

for _ in range(100):  # garbage cycles made before the collection
    cycle = Cycle()
    cycle.me = cycle
del cycle
collected = gc.collect()
frozen, left = gc.get_freeze_count() - before, len(gc.get_objects(generation=2))
print(json.dumps({"frozen": frozen, "left": left, "collected": collected, "books": 2 * len(books)}))
"""


def _after_a_full_collection(floors: float) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(floors)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(json.loads(done.stdout))


def test_what_survives_a_full_collection_over_the_floor_is_frozen_and_the_garbage_collected() -> (
    None
):
    seen = _after_a_full_collection(floors=3)  # books of 3x the floor
    assert seen["frozen"] >= seen["books"]  # the books, and whatever else lives
    assert seen["left"] == 0  # the next full collection walks only what comes after
    assert seen["collected"] >= 100  # the cycles are gone, not frozen


def test_a_full_collection_under_the_floor_freezes_nothing() -> None:
    seen = _after_a_full_collection(floors=0.5)
    assert seen["frozen"] == 0
    assert seen["left"] >= seen["books"]
