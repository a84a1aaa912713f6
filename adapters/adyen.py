"""Adyen Checkout API v71: /payments and the modification endpoints.

Captures, cancels and refunds are asynchronous at Adyen: the API answers 201
``{"status": "received"}`` and the outcome arrives by webhook (CAPTURE,
CANCELLATION, REFUND with success true/false).  They are PENDING here and the
webhook settles them.

Status contract (the one map of it):
* 200 /payments: ``resultCode`` decides (RESULT_CODES).
* 201 modifications: pending, settled by webhook.
* 429, or a 5xx with ``Transient-Error: true``: not processed (Adyen documents
  these as safe to retry with the same key).
* 400/401/403/422: our integration is wrong.
* any other 5xx, unparsable: OutcomeUnknown.
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
    OutcomeUnknown,
    PaymentOrder,
    ResultStatus,
    StatusQuery,
    Timeouts,
)

A, D, P = ResultStatus.APPROVED, ResultStatus.DECLINED, ResultStatus.PENDING

#: resultCode -> result (PaymentResponse.resultCode in Checkout v71)
RESULT_CODES: dict[str, ResultStatus] = {
    "Authorised": A,
    "Success": A,
    "Refused": D,
    "Cancelled": D,
    "Error": D,  # final: the payment failed during processing
    "PartiallyAuthorised": D,  # we never ask for partial authorisations
    "Pending": P,
    "Received": P,
    "RedirectShopper": P,
    "ChallengeShopper": P,
    "IdentifyShopper": P,
    "PresentToShopper": P,
    "AuthenticationFinished": P,
    "AuthenticationNotRequired": P,
}

MAX_IDEMPOTENCY_KEY = 64


class AdyenAdapter(Adapter):
    kind = "adyen"

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        base_url: str,
        timeouts: Timeouts | None = None,
        *,
        api_key: str,
        merchant_account: str,
        return_url: str,
    ) -> None:
        super().__init__(name, session, base_url, timeouts)
        self._headers = {"X-API-Key": api_key}
        self.merchant_account = merchant_account
        self.return_url = return_url

    async def _post(
        self, path: str, body: dict[str, Any], key: str, *, modification: bool
    ) -> AcquirerResult:
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise IntegrationError(self.name, "idempotency_key_too_long", key)
        reply = await self.request(
            "POST", path, json=body, headers={**self._headers, "Idempotency-Key": key}
        )
        return self._result(reply, modification)

    def _result(self, reply: HttpReply, modification: bool) -> AcquirerResult:
        status = reply.status
        if status == 429 or (
            status >= 500 and reply.headers.get("Transient-Error", "").lower() == "true"
        ):
            raise NotProcessed(self.name, f"http_{status}")
        if status in (400, 401, 403, 422):
            try:
                error = self.parse_json(reply)
            except OutcomeUnknown:
                error = {}
            code = error.get("errorCode", status) if isinstance(error, dict) else status
            raise IntegrationError(self.name, f"adyen_{code}", str(error)[:200])
        if status not in (200, 201):
            raise OutcomeUnknown(self.name, f"http_{status}")
        body = self.parse_json(reply)
        if not isinstance(body, dict):
            raise OutcomeUnknown(self.name, "unexpected_body")
        if modification:
            if body.get("status") != "received":
                raise OutcomeUnknown(self.name, "unexpected_modification_status", str(body)[:200])
            return AcquirerResult(
                P, acquirer_reference=body.get("pspReference"), raw_status="received"
            )
        code = body.get("resultCode")
        if code not in RESULT_CODES:
            raise OutcomeUnknown(self.name, "unexpected_result_code", str(code))
        mapped = RESULT_CODES[code]
        action = body.get("action") or {}
        return AcquirerResult(
            mapped,
            acquirer_reference=body.get("pspReference"),
            decline_code=(
                body.get("refusalReasonCode") or body.get("refusalReason") or code.lower()
            )
            if mapped is D
            else None,
            message=body.get("refusalReason"),
            raw_status=code,
            redirect_url=action.get("url"),
        )

    def _payment(self, order: PaymentOrder, capture: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "amount": {"value": order.amount, "currency": order.currency},
            "merchantAccount": self.merchant_account,
            "paymentMethod": {"type": "scheme", "storedPaymentMethodId": order.payment_method},
            "reference": order.payment_id,
            "returnUrl": self.return_url,
            "shopperInteraction": "ContAuth",
            "recurringProcessingModel": "CardOnFile",
            "shopperReference": order.metadata.get("shopper_reference", order.payment_id),
            "metadata": {**order.metadata, "merchant_reference": order.merchant_reference or ""},
        }
        if capture:
            body["captureDelayHours"] = 0
        else:
            body["additionalData"] = {"manualCapture": "true"}
        return body

    async def authorize(self, order: PaymentOrder) -> AcquirerResult:
        return await self._post(
            "/payments", self._payment(order, False), order.idempotency_key, modification=False
        )

    async def sale(self, order: PaymentOrder) -> AcquirerResult:
        return await self._post(
            "/payments", self._payment(order, True), order.idempotency_key, modification=False
        )

    def _modification(self, order: FollowOnOrder, with_amount: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "merchantAccount": self.merchant_account,
            "reference": order.refund_id or order.payment_id,
        }
        if with_amount:
            body["amount"] = {"value": order.amount, "currency": order.currency}
        return body

    async def capture(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/payments/{order.acquirer_reference}/captures",
            self._modification(order, True),
            order.idempotency_key,
            modification=True,
        )

    async def void(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/payments/{order.acquirer_reference}/cancels",
            self._modification(order, False),
            order.idempotency_key,
            modification=True,
        )

    async def refund(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/payments/{order.acquirer_reference}/refunds",
            self._modification(order, True),
            order.idempotency_key,
            modification=True,
        )

    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        """Checkout v71 has no lookup: outcomes come from replays and webhooks."""
        return None

    async def health(self) -> None:
        reply = await self.request(
            "POST",
            "/paymentMethods",
            json={"merchantAccount": self.merchant_account},
            headers=self._headers,
        )
        if reply.status in (401, 403):
            raise IntegrationError(self.name, "unauthorized")
        if reply.status != 200:
            raise NotProcessed(self.name, f"health_http_{reply.status}")
