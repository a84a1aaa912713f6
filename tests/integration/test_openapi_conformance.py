"""A schema-driven fuzzer (schemathesis) against /openapi.json: every answer
the router gives is one its published document describes."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from router.http.openapi import openapi_document
from router.pan import contains_pan, find_pan
from router.payments.methods import numeric_token_keys, pan_exempt
from tests.helpers import AUTH, make_config
from tests.threaded import ThreadedRouter

#: schemathesis's own list of rejections, plus 408, 413, 414 and 431: input too large or slow
#: to read at all is refused like any other invalid input
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429"]
REJECTIONS += ["408", "413", "431", "5xx"]
#: schemathesis's list of answers to valid data, plus 422: a request the
#: schema admits but this router cannot carry out (a token for no configured
#: acquirer, a refund above what is left), as the document says
ACCEPTANCES = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
#: the router below runs sandbox acquirers only
NUMERIC_TOKEN_KEYS = numeric_token_keys({"sandbox-a": "sandbox", "sandbox-b": "sandbox"})
schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=SchemathesisConfig.from_dict(
        {
            "checks": {
                "negative_data_rejection": {"expected-statuses": REJECTIONS},
                "positive_data_acceptance": {"expected-statuses": ACCEPTANCES},
            }
        }
    ),
)


@schema.hook
def filter_query(ctx: Any, query: dict[str, Any] | None) -> bool:
    """A query parameter whose value is null (or an empty list or object) is
    not sent at all, so a case that "adds" one sends a valid request."""
    return not query or all(value not in (None, [], {}) for value in query.values())


@pytest.fixture(scope="module")
def router() -> Iterator[ThreadedRouter]:
    with ThreadedRouter(functools.partial(make_config, ledger={"kind": "memory"})) as running:
        yield running


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_one_the_openapi_document_describes(
    case: Any, router: ThreadedRouter
) -> None:
    if case.headers and "Idempotency-Key" in case.headers:
        # each case its own key: a key reused with another body is refused by
        # design (422), which says nothing about whether the body was valid
        case.headers["Idempotency-Key"] = f"st-{uuid.uuid4().hex}"
    response = case.call(base_url=f"http://127.0.0.1:{router.port}", headers=AUTH)
    if response.status_code == 400 and response.json().get("code") == "raw_card_number_refused":
        # refused wherever a card number is, whatever the schema admits there (a
        # token's pattern cannot tell one from a token): the refusal must be right
        assert _card_number_in(case) is not None
        return
    case.validate_response(response)


def _card_number_in(case: Any) -> str | None:
    """Where the router will find a card number in this request (the same
    rules: the fields where long numbers are expected are exempt), or None."""
    around = [*(case.headers or {}).items(), *(case.query or {}).items()]
    texts = [case.formatted_path, *(text for pair in around for text in pair)]
    if any(contains_pan(str(text)) for text in texts):
        return "around the body"
    body = case.body
    if not isinstance(body, dict | list | str | int | float):  # no body at all
        return None
    exempt = pan_exempt(body, NUMERIC_TOKEN_KEYS) if case.path == "/v1/payments" else None
    return find_pan(body, exempt) if exempt else find_pan(body)
