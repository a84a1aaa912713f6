"""Card number detection: any Luhn-valid window of 13-19 digits, anywhere.

The router only ever handles tokens.  A card number in a request is refused
before the body is parsed into models, stored or logged, and the refusal
never echoes it.  A number hides in many shapes -- ``4242 4242 4242 4242``,
``4242-4242-4242-4242-123``, ``exp 12/25 4242424242424242``, inside a longer
run of digits -- so every digit run (digits joined by at most one space,
dash or dot) is searched for *every* window of 13 to 19 digits that passes
the Luhn check and starts as a card number can (ISO/IEC 7812: the first
digit, the industry identifier, is never 0 on a payment card; without this,
every run of thirteen zeros would be a "card").

Checking every window naively is quadratic in the run's length, so a body of
digits could buy seconds of CPU.  With prefix sums of the digits as they
count doubled and undoubled, each window's Luhn sum is one subtraction: the
whole search is linear.  The price of the thoroughness is that a long
numeric string (a 20-digit order number) may contain a Luhn-valid window and
be refused; references should not be long runs of digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

_RUN = re.compile(r"[0-9](?:[ .\-]?[0-9])+")
#: identifiers are not card numbers: a UUID (its dashes are structure, not a
#: card number's spacing) and a hex token of 32 or more characters with a
#: letter in it (a UUID without dashes, a digest).  Unmasked, about 0.7% of
#: random UUIDs would "hold" a card number and be refused.
_IDENTIFIER = re.compile(
    r"(?<![0-9a-zA-Z])(?:[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32,})(?![0-9a-zA-Z])"
)
_SEPARATORS = str.maketrans("", "", " .-")
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # d -> the Luhn value of 2d
MIN_DIGITS, MAX_DIGITS = 13, 19
#: a run long enough to hold a card number: one C-level scan clears the
#: common case (no such run) before anything is masked, split or summed.
#: Atomic and possessive, so a failed start is not retried with and without
#: each separator (a separator is never a digit, so nothing a retry could
#: find is lost): a hex id's scan costs a third (1.8 -> 0.6 us)
LONG_RUN = re.compile(rf"(?>[0-9](?:[ .\-]?+[0-9]){{{MIN_DIGITS - 1}}})")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        total += _DOUBLED[value] if index % 2 else value
    return total % 10 == 0


def _windows_luhn_valid(digits: str) -> bool:
    """Is any 13-19 digit window of ``digits`` Luhn-valid?  Linear time.

    In a window ending at ``end``, the digit at ``end - 1`` counts plain, the
    one before it doubled, and so on: whether digit ``i`` is doubled depends
    only on the parity of ``end - 1 - i``.  ``same[k]`` sums the first k
    digits counting even positions plain and odd ones doubled; ``other`` the
    opposite; a window takes its sum from the array matching its end's parity.
    """
    same, other = [0], [0]
    for index, char in enumerate(digits):
        value = ord(char) - 48
        plain, doubled = value, _DOUBLED[value]
        same.append(same[-1] + (plain if index % 2 == 0 else doubled))
        other.append(other[-1] + (doubled if index % 2 == 0 else plain))
    count = len(digits)
    for end in range(MIN_DIGITS, count + 1):
        sums = same if (end - 1) % 2 == 0 else other
        for size in range(MIN_DIGITS, min(MAX_DIGITS, end) + 1):
            if digits[end - size] != "0" and (sums[end] - sums[end - size]) % 10 == 0:
                return True
    return False


def _mask_identifiers(text: str) -> str:
    """The text with every identifier blanked out, keeping offsets."""
    if len(text) < 32:
        return text

    def blank(match: re.Match[str]) -> str:
        token = match.group()
        return token if token.isdecimal() else "_" * len(token)

    return _IDENTIFIER.sub(blank, text)


def digit_runs(text: str) -> Iterator[tuple[int, int, str]]:
    """Every run of digits joined by single separators: (start, end, digits)."""
    for match in _RUN.finditer(_mask_identifiers(text)):
        yield match.start(), match.end(), text[match.start() : match.end()].translate(_SEPARATORS)


def contains_pan(text: str) -> bool:
    # shorter than the shortest card number: most header values, fields and keys
    if len(text) < MIN_DIGITS or LONG_RUN.search(text) is None:
        return False
    return any(
        len(digits) >= MIN_DIGITS and _windows_luhn_valid(digits)
        for _, _, digits in digit_runs(text)
    )


def redact_pans(text: str, mark: str = "[REDACTED-PAN]") -> str:
    """Replace every digit run that holds a card number."""
    if LONG_RUN.search(text) is None:
        return text
    out, last = [], 0
    for start, end, digits in digit_runs(text):
        if len(digits) >= MIN_DIGITS and _windows_luhn_valid(digits):
            out += [text[last:start], mark]
            last = end
    return "".join(out) + text[last:] if out else text


Path = tuple[str | int, ...]


def _where(path: Path, key: bool = False) -> str:
    """A path to name in a refusal: never the value, and never a key that is
    itself the card number (it is shown as ``<key>``)."""
    shown = ".".join(str(part) for part in path) or "(body)"
    return f"{shown}.<key>" if key and path else ("<key>" if key else shown)


def _scalar_text(item: Any) -> str | None:
    """The text of a JSON scalar as it is searched (an integral float as the
    integer it is), None for what holds no digits (null, booleans)."""
    if isinstance(item, bool) or not isinstance(item, str | int | float):
        return None
    return str(int(item)) if isinstance(item, float) and item.is_integer() else str(item)


def _holds_pan(value: Any) -> bool:
    """Does any key or scalar of ``value`` hold a card number, exemptions
    aside?  What :func:`find_pan` searches, less the paths: False here is
    None there."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if contains_pan(str(key)):
                    return True
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        else:
            text = _scalar_text(item)
            if text is not None and contains_pan(text):
                return True
    return False


def find_pan(value: Any, allowed: Callable[[Path], bool] = lambda _path: False) -> str | None:
    """Where in parsed JSON (keys, strings and numbers) a card number sits, or
    None.  Walking the parsed value means escapes cannot hide one.
    ``allowed(path)`` exempts a dedicated field (a network token's number)."""
    if not _holds_pan(value):  # the common case, without building a path per node
        return None
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if contains_pan(str(key)):
                    return _where(path, key=True)
                stack.append(((*path, key), child))
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in enumerate(item))
        else:
            text = _scalar_text(item)
            if text is not None and contains_pan(text) and not allowed(path):
                return _where(path)
    return None
