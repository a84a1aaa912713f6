"""Stripe PaymentIntents and Refunds (API v1, form-encoded, Bearer auth).

Authorize = PaymentIntent with ``capture_method=manual``, sale = ``automatic``,
both ``confirm=true`` with the payment-method token.  Every POST carries our
derived Idempotency-Key, so a replay returns Stripe's stored answer.

Status contract (the one map of it):
* 2xx: the PaymentIntent / Refund status decides (STATUS_MAP, per operation).
* 402 ``card_error``: a decline, with Stripe's ``decline_code``.
* 429: rate limited, not processed.
* 400/401/403/404: our integration is wrong.
* 409 (same key still running there), 5xx, unparsable: OutcomeUnknown;
  ``Stripe-Should-Retry: false`` marks a replay as useless.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from adapters.base import (
    AcquirerResult,
    Adapter,
    FollowOnOrder,
    HttpReply,
    IntegrationError,
    NotProcessed,
    Operation,
    OutcomeUnknown,
    PaymentOrder,
    ResultStatus,
    StatusQuery,
    Timeouts,
)

API_VERSION = "2020-08-27"

A, D, P = ResultStatus.APPROVED, ResultStatus.DECLINED, ResultStatus.PENDING

#: PaymentIntent / Refund status -> result, per operation
STATUS_MAP: dict[Operation, dict[str, ResultStatus]] = {
    Operation.AUTHORIZE: {
        "requires_capture": A,
        "succeeded": A,
        "processing": P,
        "requires_action": P,
        "requires_confirmation": P,
        "requires_payment_method": D,
        "canceled": D,
    },
    Operation.SALE: {
        "succeeded": A,
        "processing": P,
        "requires_action": P,
        "requires_confirmation": P,
        "requires_capture": P,
        "requires_payment_method": D,
        "canceled": D,
    },
    Operation.CAPTURE: {"succeeded": A, "processing": P, "requires_capture": D},
    Operation.VOID: {"canceled": A},
    Operation.REFUND: {
        "succeeded": A,
        "pending": P,
        "requires_action": P,
        "failed": D,
        "canceled": D,
    },
}


def encode_form(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's deepObject encoding: metadata[k]=v, items[0][price]=p, booleans as
    true/false; None is left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, dict):
            pairs += encode_form(value, name)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    pairs += encode_form(item, f"{name}[{index}]")
                else:
                    pairs.append((f"{name}[{index}]", _scalar(item)))
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def form_body(data: dict[str, Any]) -> str:
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in encode_form(data))


class StripeAdapter(Adapter):
    kind = "stripe"

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        base_url: str,
        timeouts: Timeouts | None = None,
        *,
        api_key: str,
    ) -> None:
        super().__init__(name, session, base_url, timeouts)
        self._headers = {"Authorization": f"Bearer {api_key}", "Stripe-Version": API_VERSION}

    async def _post(
        self, path: str, params: dict[str, Any], key: str, op: Operation
    ) -> AcquirerResult:
        reply = await self.request(
            "POST",
            path,
            data=form_body(params),
            headers={
                **self._headers,
                "Idempotency-Key": key,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        return self._result(reply, op)

    def _result(self, reply: HttpReply, op: Operation) -> AcquirerResult:
        status = reply.status
        if 200 <= status < 300:
            return self._from_object(self.parse_json(reply), op)
        replayable = reply.headers.get("Stripe-Should-Retry", "").lower() != "false"
        try:
            error = self.parse_json(reply).get("error", {})
        except (OutcomeUnknown, AttributeError):
            error = {}
        if status == 402 and error.get("type") == "card_error":
            intent = error.get("payment_intent") or {}
            return AcquirerResult(
                D,
                acquirer_reference=intent.get("id"),
                decline_code=error.get("decline_code") or error.get("code") or "card_declined",
                message=error.get("message"),
                raw_status="card_error",
            )
        if status == 429:
            raise NotProcessed(self.name, "rate_limited")
        if status in (400, 401, 403, 404):
            raise IntegrationError(
                self.name,
                str(error.get("type") or f"http_{status}"),
                str(error.get("message", ""))[:200],
            )
        raise OutcomeUnknown(self.name, f"http_{status}", replayable=replayable)

    def _from_object(self, obj: Any, op: Operation) -> AcquirerResult:
        try:
            raw = str(obj["status"])
            mapped = STATUS_MAP[op][raw]
        except (KeyError, TypeError) as exc:
            raise OutcomeUnknown(self.name, "unexpected_status", repr(obj)[:200]) from exc
        error = obj.get("last_payment_error") or {}
        action = (obj.get("next_action") or {}).get("redirect_to_url") or {}
        return AcquirerResult(
            mapped,
            acquirer_reference=obj.get("id"),
            decline_code=(error.get("decline_code") or error.get("code") or "card_declined")
            if mapped is D
            else None,
            raw_status=raw,
            redirect_url=action.get("url"),
        )

    @staticmethod
    def _intent(order: PaymentOrder, capture: bool) -> dict[str, Any]:
        return {
            "amount": order.amount,
            "currency": order.currency.lower(),
            "payment_method": order.payment_method,
            "confirm": True,
            "capture_method": "automatic" if capture else "manual",
            "metadata": {
                **order.metadata,
                "payrouter_payment_id": order.payment_id,
                "merchant_reference": order.merchant_reference,
            },
        }

    async def authorize(self, order: PaymentOrder) -> AcquirerResult:
        return await self._post(
            "/v1/payment_intents",
            self._intent(order, False),
            order.idempotency_key,
            Operation.AUTHORIZE,
        )

    async def sale(self, order: PaymentOrder) -> AcquirerResult:
        return await self._post(
            "/v1/payment_intents", self._intent(order, True), order.idempotency_key, Operation.SALE
        )

    async def capture(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/v1/payment_intents/{order.acquirer_reference}/capture",
            {"amount_to_capture": order.amount},
            order.idempotency_key,
            Operation.CAPTURE,
        )

    async def void(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/v1/payment_intents/{order.acquirer_reference}/cancel",
            {"cancellation_reason": "requested_by_customer"},
            order.idempotency_key,
            Operation.VOID,
        )

    async def refund(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            "/v1/refunds",
            {
                "payment_intent": order.acquirer_reference,
                "amount": order.amount,
                "metadata": {
                    "payrouter_refund_id": order.refund_id,
                    "payrouter_payment_id": order.payment_id,
                },
            },
            order.idempotency_key,
            Operation.REFUND,
        )

    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        """Stripe cannot look up by idempotency key; a PaymentIntent we know the
        id of can be read.  Refunds whose id we never received cannot."""
        if query.operation is Operation.REFUND or not query.acquirer_reference:
            return None
        reply = await self.request(
            "GET", f"/v1/payment_intents/{query.acquirer_reference}", headers=self._headers
        )
        if reply.status == 404:
            return None
        return self._result(reply, query.operation)

    async def health(self) -> None:
        reply = await self.request("GET", "/v1/payment_intents?limit=1", headers=self._headers)
        if reply.status >= 500 or reply.status == 429:
            raise NotProcessed(self.name, f"health_http_{reply.status}")
        if reply.status in (401, 403):
            raise IntegrationError(self.name, "unauthorized")
