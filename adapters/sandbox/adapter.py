"""Adapter for the sandbox acquirer's JSON wire format."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

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
from adapters.sandbox.server import NOT_PROCESSED_HEADER

#: the sandbox's charge / refund statuses -> our result status (the one status map)
STATUS_MAP: dict[str, ResultStatus] = {
    "authorized": ResultStatus.APPROVED,
    "captured": ResultStatus.APPROVED,
    "voided": ResultStatus.APPROVED,
    "succeeded": ResultStatus.APPROVED,
    "declined": ResultStatus.DECLINED,
    "pending": ResultStatus.PENDING,
}


class SandboxAdapter(Adapter):
    kind = "sandbox"
    status_is_authoritative = True  # the sandbox stores a key before processing it

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        base_url: str,
        timeouts: Timeouts | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(name, session, base_url, timeouts)
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def _post(self, path: str, body: dict[str, Any], key: str) -> AcquirerResult:
        reply = await self.request(
            "POST", path, json=body, headers={**self._auth, "Idempotency-Key": key}
        )
        return self._result(reply)

    def _result(self, reply: HttpReply) -> AcquirerResult:
        """Map one reply into the taxonomy: the sandbox's whole status contract."""
        status = reply.status
        if status in (200, 201, 402):
            return self._parse_body(self.parse_json(reply))
        if status in (401, 403):
            raise IntegrationError(self.name, "unauthorized", f"HTTP {status}")
        if status == 429 or (
            status == 503 and reply.headers.get(NOT_PROCESSED_HEADER, "").lower() == "true"
        ):
            raise NotProcessed(self.name, f"http_{status}")
        if status in (400, 404, 422):
            raise IntegrationError(
                self.name, f"http_{status}", reply.body[:200].decode("utf8", "replace")
            )
        # 409 (our key still running there), 500, 502, 504, anything else
        raise OutcomeUnknown(self.name, f"http_{status}")

    def _parse_body(self, body: Any) -> AcquirerResult:
        try:
            raw = str(body["status"])
            mapped = STATUS_MAP[raw]
        except (KeyError, TypeError) as exc:
            raise OutcomeUnknown(self.name, "unexpected_body", repr(body)[:200]) from exc
        return AcquirerResult(
            status=mapped,
            acquirer_reference=body.get("id") or body.get("charge_id"),
            decline_code=body.get("decline_code"),
            raw_status=raw,
            redirect_url=body.get("redirect_url"),
        )

    @staticmethod
    def _create_body(order: PaymentOrder, capture: bool) -> dict[str, Any]:
        return {
            "amount": order.amount,
            "currency": order.currency,
            "payment_method": order.payment_method,
            "capture": capture,
            "reference": order.payment_id,
        }

    async def authorize(self, order: PaymentOrder) -> AcquirerResult:
        return await self._post(
            "/v1/charges", self._create_body(order, False), order.idempotency_key
        )

    async def sale(self, order: PaymentOrder) -> AcquirerResult:
        return await self._post(
            "/v1/charges", self._create_body(order, True), order.idempotency_key
        )

    async def capture(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/v1/charges/{order.acquirer_reference}/capture",
            {"amount": order.amount},
            order.idempotency_key,
        )

    async def void(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/v1/charges/{order.acquirer_reference}/void", {}, order.idempotency_key
        )

    async def refund(self, order: FollowOnOrder) -> AcquirerResult:
        return await self._post(
            f"/v1/charges/{order.acquirer_reference}/refunds",
            {"amount": order.amount, "reference": order.refund_id or ""},
            order.idempotency_key,
        )

    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        """Look the operation up by the idempotency key we sent it with; a
        pending answer is then re-read from the charge, which moves on after
        the shopper completes 3-D Secure."""
        reply = await self.request(
            "GET", f"/v1/operations/{query.idempotency_key}", headers=self._auth
        )
        if reply.status == 404:
            return None
        if reply.status != 200:
            self._result(reply)  # raises the mapped exception
            raise OutcomeUnknown(self.name, f"status_http_{reply.status}")
        stored = self.parse_json(reply)
        try:
            result = self._result(
                HttpReply(int(stored["http_status"]), {}, orjson.dumps(stored["response"]))
            )
        except NotProcessed:
            return None
        if result.status is ResultStatus.PENDING and result.acquirer_reference:
            charge = await self.request(
                "GET", f"/v1/charges/{result.acquirer_reference}", headers=self._auth
            )
            return self._result(charge)
        return result

    async def health(self) -> None:
        reply = await self.request("GET", "/health", headers=self._auth)
        if reply.status != 200:
            raise NotProcessed(self.name, f"health_http_{reply.status}")
