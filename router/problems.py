"""The API's error vocabulary: problem+json with stable machine codes (RFC 9457).

Every error the API can answer is a ``Problem``; the payment flows raise it
and the HTTP layer renders it, so no caller ever sees a stack trace.
``retryable`` marks an answer that may change on a retry with the same key:
it is never stored as the key's final answer.
"""

from __future__ import annotations

from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"

#: every 5xx the API answers by design, and whether money may have moved
#: (the README's status table says the same; a 5xx with another code is a bug)
DOCUMENTED_5XX: dict[str, bool] = {
    "acquirer_integration_error": False,  # 502: the acquirer refused our request as malformed
    "no_acquirer_available": False,  # 503: nothing was charged anywhere
    "store_unavailable": False,  # 503: nothing was sent to any acquirer
    "failover_check_incomplete": False,  # 503: nothing was sent (store failover check)
    "acquirer_unavailable": False,  # 503: the pinned acquirer did not process the operation
    "acquirer_not_configured": True,  # 503: held by an acquirer a reload removed
    "outcome_not_recorded": True,  # 503: the acquirer was called; retry to learn the result
    "ledger_unavailable": False,  # 503: an old record could not be loaded; nothing was sent
}


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
        self.retryable = retryable
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


def store_unavailable() -> Problem:
    """Fail closed: without the store nothing may be sent to an acquirer."""
    return Problem(
        503,
        "store_unavailable",
        "the idempotency store is unreachable; nothing was sent to any acquirer. Retry with "
        "the same Idempotency-Key",
        headers={"Retry-After": "1"},
        retryable=True,
    )


def outcome_not_recorded(**extra: Any) -> Problem:
    """The acquirer was called, but its answer could not be recorded durably."""
    return Problem(
        503,
        "outcome_not_recorded",
        "the acquirer was called but its answer could not be recorded; money may have "
        "moved. Retry with the same Idempotency-Key to learn the result",
        headers={"Retry-After": "2"},
        retryable=True,
        **extra,
    )
