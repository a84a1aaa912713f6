"""Logs are JSON, carry the request id, and never hold card numbers or secrets."""

from __future__ import annotations

import asyncio
import io
import logging

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from router.telemetry.logs import (
    JsonFormatter,
    TurnHandler,
    new_request_id,
    redact,
    redact_all,
    request_id,
)


def test_card_numbers_secrets_and_bearer_keys_are_removed() -> None:
    line = redact(
        "pan 4242 4242 4242 4242 key sk_live_abcdef123 auth Bearer sk_test_demo "
        "token tok_visa_12345678 order 12345678901234"
    )
    assert "4242 4242" not in line
    assert "[REDACTED-PAN]" in line
    assert "sk_live_abcdef123" not in line
    assert "sk_test_demo" not in line
    assert "tok_visa_12345678" not in line
    assert "tok_visa…" in line
    assert "12345678901234" in line  # not Luhn-valid: an order number stays


def test_log_lines_are_json_with_the_request_id() -> None:
    token = request_id.set("req_abc")
    try:
        record = logging.LogRecord(
            "x", logging.INFO, __file__, 1, "paid %s", ("4111111111111111",), None
        )
        record.fields = {"path": "/v1/payments", "status": 201}
        entry = orjson.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert entry["request_id"] == "req_abc"
    assert entry["msg"] == "paid [REDACTED-PAN]"
    assert (entry["path"], entry["status"]) == ("/v1/payments", 201)


def test_a_sane_offered_request_id_is_kept_and_a_hostile_one_replaced() -> None:
    assert new_request_id("abc-123") == "abc-123"
    assert new_request_id("bad id\nwith newline").startswith("req_")
    assert new_request_id("x" * 200).startswith("req_")
    assert new_request_id(None).startswith("req_")


def test_a_card_number_is_redacted_from_every_field_whatever_its_type() -> None:
    token = request_id.set("abc-4242424242424242")  # set by code that did not check it
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
        record.fields = {
            "number": 4242424242424242,
            "text": "ref 4242-4242-4242-4242-123",
            "other": ["exp 12/25 4242424242424242"],
            "status": 201,
            "ok": True,
        }
        entry = orjson.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert "4242" not in orjson.dumps(entry).decode()
    assert (entry["status"], entry["ok"]) == (201, True)


def test_an_offered_request_id_holding_a_card_number_is_replaced() -> None:
    assert new_request_id("4242424242424242").startswith("req_")
    assert new_request_id("trace-4242-4242-4242-4242").startswith("req_")


#: texts built from the pieces the redactions look for, and near misses of them
_NEAR_MISSES = st.lists(
    st.sampled_from(
        [
            *"0123456789 .-_/:\nZa\u00e9",
            *("4242", "Bearer ", "bearer\t", "BEARER ", "visa", "live_", "test_"),
            *("sk_", "rk_", "pk_", "whsec_", "tok_", "pm_", "src_"),
        ]
    ),
    max_size=40,
).map("".join)


@given(_NEAR_MISSES)
@settings(max_examples=400)
def test_the_quick_scan_never_passes_a_text_that_redaction_would_change(text: str) -> None:
    assert redact(text) == redact_all(text)


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("payrouter.test", logging.INFO, "", 0, message, None, None)


def _handler() -> tuple[TurnHandler, _CountingStream]:
    stream = _CountingStream()
    handler = TurnHandler(stream)
    handler.setFormatter(JsonFormatter())
    return handler, stream


async def test_the_lines_of_one_loop_turn_are_written_in_one_write_at_its_end() -> None:
    handler, stream = _handler()
    for n in range(3):
        handler.handle(_record(f"line {n}"))
    assert stream.getvalue() == ""  # nothing yet: the turn is still running
    await asyncio.sleep(0)  # the turn ends
    lines = stream.getvalue().splitlines()
    assert [orjson.loads(line)["msg"] for line in lines] == ["line 0", "line 1", "line 2"]
    assert stream.writes == 1


def test_a_line_logged_where_no_loop_runs_is_written_at_once() -> None:
    handler, stream = _handler()
    handler.handle(_record("starting"))
    assert orjson.loads(stream.getvalue())["msg"] == "starting"


async def test_flush_writes_what_is_pending_so_shutdown_loses_nothing() -> None:
    handler, stream = _handler()
    handler.handle(_record("last words"))
    handler.flush()  # what logging.shutdown does at exit
    assert orjson.loads(stream.getvalue())["msg"] == "last words"
    await asyncio.sleep(0)  # the turn's own flush finds nothing more to write
    assert stream.writes == 1
