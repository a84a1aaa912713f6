"""Raw card number detection: any Luhn-valid run of 13-19 digits, anywhere.

The router only ever handles tokens.  A PAN in a request is refused before the
body is parsed into models, stored or logged, and the refusal never echoes it.
"""

from __future__ import annotations

import re
from typing import Any

# digits, optionally grouped by single spaces or dashes ("4242 4242 4242 4242")
_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def contains_pan(text: str) -> bool:
    for match in _CANDIDATE.finditer(text):
        digits = match.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def json_contains_pan(value: Any) -> bool:
    """Walk parsed JSON (keys, strings and numbers), so escapes cannot hide one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if contains_pan(item):
                return True
        elif isinstance(item, int) and not isinstance(item, bool):
            if contains_pan(str(item)):
                return True
        elif isinstance(item, float) and item.is_integer() and contains_pan(str(int(item))):
            return True
    return False
