"""problem+json errors with stable machine codes (RFC 9457).

Every error the API can answer is a ``Problem``; handlers raise it and one
middleware renders it, so no caller ever sees a stack trace.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        retryable: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.retryable = retryable  # decided before anything could be processed
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "type": f"https://payrouter.dev/problems/{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            **self.extra,
        }

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=orjson.dumps(self.body()),
            content_type=PROBLEM_CONTENT_TYPE,
            headers=self.headers,
        )


def bad_request(code: str, detail: str, **extra: Any) -> Problem:
    return Problem(400, code, detail, **extra)


def store_unavailable() -> Problem:
    """Fail closed: without the store nothing may be sent to an acquirer."""
    return Problem(
        503,
        "store_unavailable",
        "the idempotency store is unreachable; retry with the same Idempotency-Key "
        "(a retry resolves whatever this request had started, and charges nothing twice)",
        headers={"Retry-After": "1"},
    )
