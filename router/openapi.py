"""The router's own OpenAPI 3.1 document, generated from the pydantic models
so the published schema cannot drift from what the handlers accept."""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from router import __version__
from router.models import (
    CapturePayment,
    CreatePayment,
    CreateRefund,
    PaymentView,
    ProblemView,
    RefundView,
    VoidPayment,
)

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
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "invalid request, missing Idempotency-Key or a raw card number",
        401: "missing or invalid API key",
        402: "the acquirer declined the operation",
        404: "no such object for this caller",
        409: "same key still in flight (Retry-After), or the payment state forbids it",
        422: "same Idempotency-Key with a different request, or amount out of range",
        502: "acquirer integration error",
        503: "idempotency store or every acquirer unavailable; nothing was charged",
    }
    return {str(c): _answer(meaning[c], "ProblemView", _PROBLEM) for c in codes}


def _mutation(
    summary: str, body: str, ok: dict[str, Any], *errors: int, path_param: bool = True
) -> dict[str, Any]:
    params: list[dict[str, Any]] = [_IDEMPOTENCY]
    if path_param:
        params.append(
            {"name": "payment_id", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    return {
        "post": {
            "summary": summary,
            "parameters": params,
            "requestBody": _json_body(body),
            "responses": {**ok, **_errors(400, 401, *errors, 503)},
        }
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (
                m,
                "validation"
                if m in (CreatePayment, CapturePayment, CreateRefund, VoidPayment)
                else "serialization",
            )
            for m in (
                CreatePayment,
                CapturePayment,
                VoidPayment,
                CreateRefund,
                PaymentView,
                RefundView,
                ProblemView,
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
            "/v1/payments": _mutation(
                "Create a payment (capture=true: sale, false: authorize only)",
                "CreatePayment",
                {
                    "201": _answer("authorized, captured or declined", "PaymentView"),
                    "202": _answer("pending (next_action) or unknown", "PaymentView"),
                },
                409,
                422,
                502,
                path_param=False,
            ),
            "/v1/payments/{payment_id}": {
                "get": {
                    "summary": "Get a payment",
                    "parameters": [
                        {
                            "name": "payment_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _answer("the payment", "PaymentView"),
                        **_errors(401, 404),
                    },
                }
            },
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
            "/v1/refunds/{refund_id}": {
                "get": {
                    "summary": "Get a refund",
                    "parameters": [
                        {
                            "name": "refund_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": _answer("the refund", "RefundView"), **_errors(401, 404)},
                }
            },
        },
    }
