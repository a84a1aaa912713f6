"""Checkout.com Unified Payments API: /payments, captures, voids, refunds.

Captures, voids and refunds answer 202 Accepted with an ``action_id``: the
outcome comes by webhook (payment_captured, payment_voided, payment_refunded
and their *_declined forms) or from the payment's action list.

Status contract (the one map of it):
* 201/202 /payments: ``status`` decides (STATUS_MAP).
* 202 actions: pending.
* 429: not processed.  401/403/404/422: our integration is wrong.
* 409 (same Cko-Idempotency-Key still running), 5xx, unparsable: OutcomeUnknown.
"""

from __future__ import annotations

from typing import Any

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

A, D, P = ResultStatus.APPROVED, ResultStatus.DECLINED, ResultStatus.PENDING

#: payment status -> result of the create
STATUS_MAP: dict[str, ResultStatus] = {
    "Authorized": A,
    "Captured": A,
    "Paid": A,
    "Card Verified": A,
    "Partially Captured": A,
    "Declined": D,
    "Canceled": D,
    "Expired": D,
    "Pending": P,
}

#: action type in GET /payments/{id}/actions -> our operation
ACTION_TYPES = {"Capture": Operation.CAPTURE, "Void": Operation.VOID, "Refund": Operation.REFUND}


class CheckoutAdapter(Adapter):
    kind = "checkout"

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
        self._headers = {"Authorization": f"Bearer {api_key}"}

    async def _post(
        self, path: str, body: dict[str, Any], key: str, *, action: bool
    ) -> AcquirerResult:
        reply = await self.request(
            "POST", path, json=body, headers={**self._headers, "Cko-Idempotency-Key": key}
        )
        return self._result(reply, action)

    def _result(self, reply: HttpReply, action: bool) -> AcquirerResult:
        status = reply.status
        if status == 429:
            raise NotProcessed(self.name, "rate_limited")
        if status in (401, 403, 404, 422):
            raise IntegrationError(
                self.name, f"http_{status}", reply.body[:200].decode("utf8", "replace")
            )
        if status not in (200, 201, 202):
            raise OutcomeUnknown(self.name, f"http_{status}")
        body = self.parse_json(reply)
        if not isinstance(body, dict):
            raise OutcomeUnknown(self.name, "unexpected_body")
        if action:
            return AcquirerResult(
                P, acquirer_reference=body.get("action_id"), raw_status="accepted"
            )
        raw = body.get("status")
        if raw not in STATUS_MAP:
            raise OutcomeUnknown(self.name, "unexpected_status", str(raw))
        mapped = STATUS_MAP[raw]
        redirect = ((body.get("_links") or {}).get("redirect") or {}).get("href")
        return AcquirerResult(
            mapped,
            acquirer_reference=body.get("id"),
            decline_code=(body.get("response_code") or "declined") if mapped is D else None,
            message=body.get("response_summary"),
            raw_status=raw,
            redirect_url=redirect,
        )

    @staticmethod
    def _payment(order: PaymentOrder, capture: bool) -> dict[str, Any]:
        return {
            "source": {"type": "id", "id": order.payment_method},
            "amount": order.amount,
            "currency": order.currency,
            "reference": order.payment_id,
            "capture": capture,
            "metadata": {**order.metadata, "merchant_reference": order.merchant_reference or ""},
        }

    async def authorize(self, order: PaymentOrder) -> AcquirerResult:
        return await self._post(
            "/payments", self._payment(order, False), order.idempotency_key, action=False
        )

    async def sale(self, order: PaymentOrder) -> AcquirerResult:
        return await self._post(
            "/payments", self._payment(order, True), order.idempotency_key, action=False
        )

    async def capture(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/payments/{order.acquirer_reference}/captures",
            {"amount": order.amount, "reference": order.payment_id},
            order.idempotency_key,
            action=True,
        )

    async def void(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/payments/{order.acquirer_reference}/voids",
            {"reference": order.payment_id},
            order.idempotency_key,
            action=True,
        )

    async def refund(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/payments/{order.acquirer_reference}/refunds",
            {"amount": order.amount, "reference": order.refund_id},
            order.idempotency_key,
            action=True,
        )

    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        if not query.acquirer_reference:
            return None
        if query.operation in (Operation.AUTHORIZE, Operation.SALE):
            reply = await self.request(
                "GET", f"/payments/{query.acquirer_reference}", headers=self._headers
            )
            return None if reply.status == 404 else self._result(reply, action=False)
        reply = await self.request(
            "GET", f"/payments/{query.acquirer_reference}/actions", headers=self._headers
        )
        if reply.status != 200:
            return None if reply.status == 404 else self._result(reply, action=False)
        wanted = query.refund_id or query.payment_id
        for item in self.parse_json(reply) or []:
            if ACTION_TYPES.get(item.get("type")) is query.operation and (
                item.get("reference") == wanted
            ):
                return AcquirerResult(
                    A if item.get("approved") else D,
                    acquirer_reference=item.get("id"),
                    decline_code=None
                    if item.get("approved")
                    else item.get("response_code") or "declined",
                )
        return None

    async def health(self) -> None:
        reply = await self.request("GET", "/payments/pay_healthcheck", headers=self._headers)
        if reply.status in (401, 403):
            raise IntegrationError(self.name, "unauthorized")
        if reply.status >= 500 or reply.status == 429:
            raise NotProcessed(self.name, f"health_http_{reply.status}")
