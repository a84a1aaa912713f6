"""Immutable value classes, kept immutable where that costs nothing: in the
type checker.

``@dataclass(frozen=True)`` guards every assignment at run time, and pays for
the guard on every construction: its ``__init__`` sets each field through
``object.__setattr__``, about five times the work of a plain one (940 against
188 ns for eight fields, in a tight loop).  A payment builds a few dozen such
values, and the guard cost 3-4% of its CPU (``benchmarks.ab``, 30 rounds,
2026-12-08: 0.962x and 0.968x without it).

To mypy --strict, which the suite runs (``tests/unit/test_code_is_clean.py``),
a ``@frozen`` class is a frozen dataclass: assigning to a field is an error, and
the class is hashable by its fields.  At run time it is a slotted dataclass
hashed by its fields (``unsafe_hash``, the hash a frozen one has), without the
guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[T]) -> type[T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
