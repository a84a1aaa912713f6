"""What a request may carry, checked before anything else sees it.

Bodies are strict JSON (UTF-8, no duplicate keys, no NaN or Infinity, sane
integers), refused whole if they hold a card number anywhere, then validated
by the pydantic model of the route.  Refusals never echo the input.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from router.http.keys import CONFIG
from router.pan import Path, contains_pan, find_pan
from router.problems import Problem
from router.store.ids import ID_PATTERN

M = TypeVar("M", bound=BaseModel)

#: published in /openapi.json as they are checked here
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_ID = re.compile(ID_PATTERN)


def idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise Problem(
            400, "idempotency_key_missing", "every mutating request needs an Idempotency-Key header"
        )
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Problem(
            400,
            "idempotency_key_invalid",
            "Idempotency-Key must be 1-255 printable ASCII characters",
        )
    return key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Problem(
                400,
                "duplicate_json_key",
                "a key appears twice in one JSON object; which one would count?",
            )
        seen[key] = value
    return seen


def _no_constants(name: str) -> Any:
    raise Problem(400, "invalid_json", f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN or Infinity."""
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
        value, end = _DECODER.raw_decode(text.lstrip())
        if text.lstrip()[end:].strip():
            raise Problem(400, "invalid_json", "the body is not valid JSON: extra data")
        return value
    except UnicodeDecodeError:
        raise Problem(400, "invalid_json", "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise Problem(400, "invalid_json", f"the body is not valid JSON: {exc.msg}") from None
    except (RecursionError, ValueError):  # nesting, or an integer too long to convert
        raise Problem(400, "invalid_json", "the body is not valid JSON") from None


_PAN_REFUSED = "send a payment method token instead; the request was not stored, logged or sent on"
#: minted afresh when it is not a sane id (see telemetry.logs), so never refused
_REMINTED_HEADERS = frozenset({"x-request-id"})


def refuse_pan(data: Any, allowed: Callable[[Path], bool] = lambda _path: False) -> None:
    """A card number anywhere in the body refuses the whole request; the
    refusal names the field, never the value.  ``allowed``: the fields where a
    long number is expected (a network token's number)."""
    where = find_pan(data, allowed)
    if where is not None:
        raise Problem(
            400,
            "raw_card_number_refused",
            f"{where} holds what looks like a card number: {_PAN_REFUSED}",
            field=where,
        )


def _pan_around(request: web.Request) -> str | None:
    raw = request.raw_path
    decoded = unquote_plus(raw)  # %20 is a space, + too
    if contains_pan(raw) or (decoded != raw and contains_pan(decoded)):
        return "the URL"
    for name, value in request.headers.items():
        if name.lower() in _REMINTED_HEADERS:
            continue
        if contains_pan(name):
            return "a header name"
        if contains_pan(value):
            return f"the {name} header"
    return None


def refuse_pan_around(request: web.Request) -> None:
    """The same for what surrounds a body: the path, the query, every header."""
    where = _pan_around(request)
    if where is not None:
        raise Problem(
            400,
            "raw_card_number_refused",
            f"{where} holds what looks like a card number: {_PAN_REFUSED}",
        )


class ClientGone(Exception):
    """The client closed the connection before its request was read: there
    is nobody left to answer, and nothing went wrong on our side."""


async def read_body(request: web.Request, *, json_only: bool = True) -> bytes:
    """The whole body, within the configured time.  ``json_only``: a body
    must say it is JSON (415 otherwise; acquirers' webhooks are read as sent)."""
    if json_only and request.body_exists and not _is_json(request):
        raise Problem(
            415,
            "unsupported_media_type",
            "send the body with Content-Type: application/json (UTF-8)",
            headers={"Accept-Post": "application/json"},
        )
    limit = request.app[CONFIG].server.body_timeout_s
    try:
        if request.content.is_eof():  # it all came with the headers: nothing to wait for
            return await request.read()
        async with asyncio.timeout(limit):
            return await request.read()
    except TimeoutError:
        raise Problem(
            408, "request_timeout", f"the request body did not arrive within {limit:g} s"
        ) from None
    except ConnectionResetError:
        raise ClientGone from None
    except HttpProcessingError:
        raise Problem(
            400, "malformed_body", "the body could not be read (its framing or encoding is broken)"
        ) from None


def _is_json(request: web.Request) -> bool:
    charset = (request.charset or "utf-8").lower()
    return request.content_type == "application/json" and charset in ("utf-8", "utf8")


Exemptions = Callable[[Any], Callable[[Path], bool]]


async def body(request: web.Request, model: type[M], exempt: Exemptions | None = None) -> M:
    """``exempt(data)``: the fields of this body where a card-like number is
    expected (see router.payments.methods.pan_exempt)."""
    data = parse_json(await read_body(request))
    refuse_pan(data, exempt(data) if exempt else lambda _path: False)
    if not isinstance(data, dict):
        raise Problem(400, "invalid_json", "the body must be a JSON object")
    return validated(model, data)


def query(request: web.Request, model: type[M], *, lists: frozenset[str] = frozenset()) -> M:
    """The query string as ``model``; a name in ``lists`` may repeat."""
    if any(not name for name, _ in parse_qsl(request.query_string, keep_blank_values=True)):
        raise Problem(400, "invalid_request", "a query parameter has no name")
    data: dict[str, object] = {}
    for name in request.query:
        values = request.query.getall(name)
        if name in lists:
            data[name] = values
        elif len(values) > 1:
            raise Problem(400, "invalid_request", "a query parameter is given twice")
        else:
            data[name] = values[0]
    return validated(model, data)


def validated(model: type[M], data: dict[str, object]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "(body)",
                "message": err["msg"].removeprefix("Value error, "),
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise Problem(
            400, "invalid_request", f"{len(errors)} field(s) are invalid", errors=errors
        ) from None


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.fullmatch(value):
        raise Problem(404, f"{name.removesuffix('_id')}_not_found", "no such object")
    return value
