"""Structured JSON logs with a request id and redaction.

Redaction runs on the final message, whatever a caller of ``log`` passed:
card-number-like digit runs, bearer credentials and secret-looking keys are
removed, payment-method tokens are shortened.  The request id comes from the
caller's ``X-Request-Id`` (when it is sane) or is minted here, is echoed on
the response and sent on to acquirers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import re
import secrets
import sys
import time
from typing import Any

import orjson

from adapters.base import REQUEST_ID
from router.pan import LONG_RUN, contains_pan, redact_pans

request_id = REQUEST_ID  # one context variable: logs and acquirer calls share it

#: what the current request's access line will say besides method, route and
#: status: filled in by whoever learns it (the payment answer, a problem)
access_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "payrouter_access_fields", default=None
)
#: which worker of ``serve --workers N`` this process is (0: a single process)
WORKER_ENV = "PAYROUTER_WORKER"
WORKER = os.environ.get(WORKER_ENV, "0")


def note(**fields: Any) -> None:
    """Add to the current request's access line (ignored outside a request)."""
    current = access_fields.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v is not None})


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s,\"']+")
_SECRET = re.compile(r"\b(sk|rk|whsec|pk)_(live|test|sbox)?_?[A-Za-z0-9]{4,}")
_TOKEN = re.compile(r"\b(tok|pm|src)_([A-Za-z0-9]{4})[A-Za-z0-9_]+")
#: what any of the redactions needs to find before it can change a text: a
#: digit run that may hold a card number, "bearer", a secret's or a token's
#: prefix.  Most fields of a line (a route, a status, an id) have none, and
#: three scans clear them instead of four substitutions: one pattern of the
#: three alternatives cost twice as much (no first-character skip for the
#: whole), and every secret and token prefix ends in "_", which most texts lack.
_PREFIX = re.compile(r"(?:sk|rk|whsec|pk|tok|pm|src)_")
_BEARER_WORD = re.compile(r"bearer", re.IGNORECASE)


def _suspect(text: str) -> bool:
    return (
        LONG_RUN.search(text) is not None
        or ("_" in text and _PREFIX.search(text) is not None)
        or _BEARER_WORD.search(text) is not None
    )


def new_request_id(offered: str | None) -> str:
    """The caller's id when it is a sane one (charset, length, no card number
    in it); a fresh one otherwise.  It is echoed, logged and sent on, so it
    must carry nothing it should not."""
    if offered and _REQUEST_ID.match(offered) and not contains_pan(offered):
        return offered
    return "req_" + secrets.token_hex(8)


def redact(text: str) -> str:
    if not _suspect(text):
        return text
    return redact_all(text)


def redact_all(text: str) -> str:
    """Every redaction, unconditionally (what :func:`redact` does to a suspect text)."""
    text = redact_pans(text)
    text = _BEARER.sub(r"\1[REDACTED]", text)
    text = _SECRET.sub("[REDACTED-SECRET]", text)
    return _TOKEN.sub(r"\1_\2…", text)


def _redacted(value: Any) -> Any:
    """Every field of a log line, whatever its type, passes the redaction; a
    number stays a number unless it is a card number."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return "[REDACTED-PAN]" if contains_pan(str(value)) else value
    return redact(value if isinstance(value, str) else str(value))


@functools.lru_cache(maxsize=64)
def _utc_second(seconds: int) -> str:
    """Every line has a timestamp, and most lines share their second with
    the one before: formatted once per second, not per line."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": f"{_utc_second(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            entry["request_id"] = redact(str(rid))
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: _redacted(v) for k, v in fields.items()})
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class TurnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the lines of one event-loop turn together, at the turn's end.

    A line written on its own is a write and a flush (a system call) per
    record; under load those took about half as much again as formatting
    the line (profiled).  A record
    emitted where no loop runs (start-up, shutdown, another thread) is
    written at once; ``flush`` (logging's shutdown calls it) writes what is
    pending.  A crash loses at most the lines of the turn it interrupts."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write([line])
            return
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        with self.lock if self.lock is not None else contextlib.nullcontext():
            lines, self._pending = self._pending, []
            if lines:
                self._write(lines)

    def _write(self, lines: list[str]) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed stream: nowhere left to say so
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()


_base_factory = logging.getLogRecordFactory()


def _stamped_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id.get()
    return record


def stamp_request_ids() -> None:
    """Every record carries the request id of the moment it was created, so a
    handler that formats later (or elsewhere) still has it.  Idempotent."""
    logging.setLogRecordFactory(_stamped_record)


def configure(level: int = logging.INFO) -> None:
    """One JSON line per record on stderr, written a loop turn at a time
    (:class:`TurnHandler`).  The line names no source file,
    thread or process, so records do not collect them: the logging HOWTO's
    "Optimization" switches (finding the caller walks the stack on every
    record: measured, about a twelfth of a line's cost)."""
    logging._srcfile = None  # the documented switch for findCaller
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = TurnHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
