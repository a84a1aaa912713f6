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
from tests.helpers import AUTH, make_config
from tests.threaded import ThreadedRouter

#: schemathesis's own list of rejections, plus 414 and 431: input too large
#: to read at all is refused like any other invalid input
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429"]
REJECTIONS += ["431", "5xx"]
#: schemathesis's list of answers to valid data, plus 422: a request the
#: schema admits but this router cannot carry out (a token for no configured
#: acquirer, a refund above what is left), as the document says
ACCEPTANCES = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
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
    case.call_and_validate(base_url=f"http://127.0.0.1:{router.port}", headers=AUTH)
