"""The router's own OpenAPI 3.1 document, generated from the pydantic models
so the published schema cannot drift from what the handlers accept."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from router import __version__
from router.http.inputs import IDEMPOTENCY_KEY_PATTERN
from router.payments.models import (
    AuthenticatePayment,
    CapturePayment,
    CreatePayment,
    CreateRefund,
    EventList,
    ListPayments,
    PaymentList,
    PaymentView,
    ProblemView,
    RefundView,
    VoidPayment,
)
from router.store.ids import ID_PATTERN

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json_body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _answer(description: str, name: str, media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": _ref(name)}}}


_PROBLEM = "application/problem+json"
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "unique per operation; a retry reuses it (IETF Idempotency-Key draft)",
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
}


_MEANING = {
    400: "invalid request, missing or malformed Idempotency-Key, or what looks like a card number",
    401: "missing or invalid API key",
    402: "the acquirer declined the operation",
    403: "the key lacks the scope, or may not be used from this address",
    404: "no such object for this caller",
    408: "the request body did not arrive in time",
    409: "same key still in flight (Retry-After), or the payment state forbids it",
    413: "the body is larger than server.max_body_bytes",
    414: "the URL is too long",
    415: "the body is not application/json (UTF-8)",
    422: "well formed but not possible here: same Idempotency-Key with another request, an "
    "amount out of range, a payment method no acquirer (or not the hinted one) can take",
    431: "too many or too large headers",
    502: "acquirer integration error",
    503: "idempotency store or every acquirer unavailable; nothing was charged",
}
#: what any request may get, and what any request with a body may get besides
_ANY_REQUEST = (400, 401, 403, 414, 431, 503)
_WITH_BODY = (408, 413, 415, 422)


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _answer(_MEANING[c], "ProblemView", _PROBLEM) for c in sorted(set(codes))}


def _id_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": ID_PATTERN},
    }


def _mutation(
    summary: str, body: str, ok: dict[str, Any], *errors: int, path_param: bool = True
) -> dict[str, Any]:
    params: list[dict[str, Any]] = [_IDEMPOTENCY]
    if path_param:
        params.append(_id_param("payment_id"))
    return {
        "post": {
            "summary": summary,
            "parameters": params,
            "requestBody": _json_body(body),
            "responses": {**ok, **_errors(*_ANY_REQUEST, *_WITH_BODY, *errors)},
        }
    }


def _query_parameters(model: type[BaseModel], lists: frozenset[str]) -> list[dict[str, Any]]:
    """The model's fields as query parameters, with the constraints it checks."""
    schema = model.model_json_schema(ref_template=_REF)
    params = []
    for name, field in schema["properties"].items():
        spec = {k: v for k, v in field.items() if k not in ("title", "default", "description")}
        if name not in lists:  # a list field is an array; an optional one is one value
            options = spec.pop("anyOf", None)
            if options is not None:
                spec = next(o for o in options if o.get("type") != "null")
        params.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": field.get("description", ""),
                "schema": spec,
                **({"style": "form", "explode": True} if name in lists else {}),
            }
        )
    return params


def _list_payments() -> dict[str, Any]:
    return {
        "summary": "The caller's payments, newest first, from the system of record "
        "(a moment behind the live state; 404 ledger_not_configured without one)",
        "parameters": _query_parameters(ListPayments, frozenset({"status"})),
        "responses": {"200": _answer("one page", "PaymentList"), **_errors(*_ANY_REQUEST, 404)},
    }


def _authenticate() -> dict[str, Any]:
    """No Idempotency-Key: completing an authentication is idempotent by itself."""
    return {
        "post": {
            "summary": "Complete what a pending payment's next_action asked of the shopper "
            "(3-D Secure): submit what the return URL carried; a payment no longer pending "
            "answers as it is",
            "parameters": [_id_param("payment_id")],
            "requestBody": _json_body("AuthenticatePayment"),
            "responses": {
                "200": _answer("final: authorized, captured or declined", "PaymentView"),
                "202": _answer("still pending (or unknown)", "PaymentView"),
                **_errors(*_ANY_REQUEST, *_WITH_BODY, 404, 409, 502),
            },
        }
    }


def _read(summary: str, param: str, view: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": [_id_param(param)],
            "responses": {"200": _answer("found", view), **_errors(*_ANY_REQUEST, 404)},
        }
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (
                m,
                "validation"
                if m
                in (CreatePayment, CapturePayment, CreateRefund, VoidPayment, AuthenticatePayment)
                else "serialization",
            )
            for m in (
                CreatePayment,
                AuthenticatePayment,
                CapturePayment,
                VoidPayment,
                CreateRefund,
                PaymentView,
                RefundView,
                ProblemView,
                PaymentList,
                EventList,
            )
        ],
        ref_template=_REF,
    )
    payment_ok = {
        "200": _answer("the updated payment", "PaymentView"),
        "202": _answer("outcome not final yet (pending or unknown)", "PaymentView"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "payrouter",
            "version": __version__,
            "description": "One payment endpoint in front of many acquirers.",
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/payments": {
                **_mutation(
                    "Create a payment (capture=true: sale, false: authorize only)",
                    "CreatePayment",
                    {
                        "201": _answer("authorized, captured or declined", "PaymentView"),
                        "202": _answer("pending (next_action) or unknown", "PaymentView"),
                    },
                    404,
                    409,
                    422,
                    502,
                    path_param=False,
                ),
                "get": _list_payments(),
            },
            "/v1/payments/{payment_id}": _read("Get a payment", "payment_id", "PaymentView"),
            "/v1/payments/{payment_id}/events": _read(
                "Every version of the payment and its refunds, oldest first",
                "payment_id",
                "EventList",
            ),
            "/v1/payments/{payment_id}/capture": _mutation(
                "Capture an authorization (partial allowed)",
                "CapturePayment",
                payment_ok,
                402,
                404,
                409,
                422,
                502,
            ),
            "/v1/payments/{payment_id}/void": _mutation(
                "Void an authorization",
                "VoidPayment",
                payment_ok,
                402,
                404,
                409,
                422,
                502,
            ),
            "/v1/payments/{payment_id}/authenticate": _authenticate(),
            "/v1/payments/{payment_id}/refunds": _mutation(
                "Refund a captured payment (partial allowed)",
                "CreateRefund",
                {
                    "201": _answer("succeeded or declined", "RefundView"),
                    "202": _answer("pending or unknown", "RefundView"),
                },
                404,
                409,
                422,
                502,
            ),
            "/v1/refunds/{refund_id}": _read("Get a refund", "refund_id", "RefundView"),
        },
    }
