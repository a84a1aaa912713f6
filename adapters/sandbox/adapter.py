"""Adapter for the sandbox acquirer's JSON wire format.

Status contract (the one map of it):
* 200/201/402: the body's ``status`` decides (STATUS_MAP).
* 401/403: our credentials are wrong.  400/404/422: our request is wrong.
* 429, or 503 with ``Transient-Error: true``: not processed.
* 409 (our key still running there), 500, 502, 504, anything else: unknown.
"""

from __future__ import annotations

from typing import Any

import orjson

from adapters.base import (
    AcquirerResult,
    Adapter,
    FollowOnOrder,
    NextAction,
    PaymentOrder,
    ResultStatus,
    StatusQuery,
)
from adapters.credentials import AcquirerToken, Credential, NetworkToken, VaultCard
from adapters.declines import DeclineCode, normalize
from adapters.errors import IntegrationError, NotProcessed, OutcomeUnknown
from adapters.forwarding import card_fields
from adapters.sandbox.server import NOT_PROCESSED_HEADER
from adapters.transport import HttpReply

A, D, P = ResultStatus.APPROVED, ResultStatus.DECLINED, ResultStatus.PENDING

#: the sandbox's charge / refund statuses -> (result, funds captured?)
STATUS_MAP: dict[str, tuple[ResultStatus, bool | None]] = {
    "authorized": (A, False),
    "captured": (A, True),
    "voided": (A, None),
    "succeeded": (A, None),
    "declined": (D, None),
    "pending": (P, None),
}

#: the sandbox speaks the normalized vocabulary, and also the ISO 8583 response
#: codes issuers answer with (a fault's decline_code may be either), so tests
#: see a raw code beside the normalized one as with a real acquirer
DECLINES: dict[str, DeclineCode] = {
    "refused": DeclineCode.DO_NOT_HONOR,
    "05": DeclineCode.DO_NOT_HONOR,
    "14": DeclineCode.INVALID_CARD,
    "51": DeclineCode.INSUFFICIENT_FUNDS,
    "54": DeclineCode.EXPIRED_CARD,
    "59": DeclineCode.FRAUD_SUSPECTED,
    "61": DeclineCode.LIMIT_EXCEEDED,
    "91": DeclineCode.ISSUER_UNAVAILABLE,
    "96": DeclineCode.PROCESSING_ERROR,
}


class SandboxAdapter(Adapter):
    kind = "sandbox"
    takes = frozenset({AcquirerToken, VaultCard, NetworkToken})
    status_is_authoritative = True  # the sandbox stores a key before processing it
    finds_creates = True

    def _auth(self) -> dict[str, str]:
        key = self.settings.api_key
        return {"Authorization": f"Bearer {key.get()}"} if key else {}

    async def _post(
        self, path: str, body: dict[str, Any], key: str, card: VaultCard | None = None
    ) -> AcquirerResult:
        reply = await self.request(
            "POST", path, json=body, headers={**self._auth(), "Idempotency-Key": key}, card=card
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
        raise OutcomeUnknown(self.name, f"http_{status}")

    def _parse_body(self, body: Any) -> AcquirerResult:
        if not isinstance(body, dict) or str(body.get("status")) not in STATUS_MAP:
            raise OutcomeUnknown(self.name, "unexpected_body", repr(body)[:200])
        mapped, captured = STATUS_MAP[str(body["status"])]
        redirect = body.get("redirect_url")
        ntid = body.get("network_transaction_id")
        return AcquirerResult(
            status=mapped,
            acquirer_reference=body.get("id") or body.get("charge_id"),
            decline=normalize(body.get("decline_code"), DECLINES) if mapped is D else None,
            captured=captured,
            next_action=NextAction("redirect", url=str(redirect)) if redirect else None,
            network_transaction_id=ntid if isinstance(ntid, str) else None,
        )

    @staticmethod
    def _method(credential: Credential) -> dict[str, Any]:
        if isinstance(credential, AcquirerToken):
            return {"payment_method": credential.token}
        if isinstance(credential, NetworkToken):
            return {
                "network_token": {
                    "number": credential.number,
                    "exp_month": credential.expiry_month,
                    "exp_year": credential.expiry_year,
                    "cryptogram": credential.cryptogram,
                    "eci": credential.eci,
                }
            }
        fields = card_fields(credential)
        return {
            "card": {
                "number": fields.number,
                "exp_month": fields.expiry_month_int,
                "exp_year": fields.expiry_year_int,
                "cvc": fields.cvc,
                "name": fields.holder,
            }
        }

    @classmethod
    def create_body(cls, order: PaymentOrder) -> dict[str, Any]:
        body: dict[str, Any] = {
            "amount": order.amount,
            "currency": order.currency,
            **cls._method(order.credential),
            "capture": order.capture,
            "reference": order.payment_id,
        }
        if order.return_url:
            body["return_url"] = order.return_url
        stored = order.stored_credential
        if stored is not None:
            body["stored_credential"] = {
                "initiator": str(stored.initiator),
                "usage": str(stored.usage),
                "sequence": str(stored.sequence) if stored.sequence else None,
                "network_transaction_id": stored.network_transaction_id,
            }
        return body

    async def _create(self, order: PaymentOrder) -> AcquirerResult:
        card = order.credential if isinstance(order.credential, VaultCard) else None
        return await self._post(
            "/v1/charges", self.create_body(order), order.idempotency_key, card=card
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
            {
                "amount": order.amount,
                "reference": order.refund_id or "",
                "reason": order.reason,
                "merchant_reference": order.merchant_reference,
            },
            order.idempotency_key,
        )

    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        """Look the operation up by the idempotency key we sent it with; a
        pending answer is then re-read from the charge, which moves on after
        the shopper completes 3-D Secure."""
        reply = await self.request(
            "GET", f"/v1/operations/{query.idempotency_key}", headers=self._auth()
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
                "GET", f"/v1/charges/{result.acquirer_reference}", headers=self._auth()
            )
            return self._result(charge)
        return result

    async def abandon(self, query: StatusQuery) -> AcquirerResult | None:
        if not query.acquirer_reference:
            return None
        await self._post(
            f"/v1/charges/{query.acquirer_reference}/cancel",
            {},
            query.idempotency_key[:40] + "-abandon",
        )
        charge = await self.request(
            "GET", f"/v1/charges/{query.acquirer_reference}", headers=self._auth()
        )
        return self._result(charge)

    async def find(self, query: StatusQuery) -> AcquirerResult | None:
        """The sandbox looks creates up by key, authoritatively."""
        return await self.status(query)

    async def health(self) -> None:
        reply = await self.request("GET", "/health", headers=self._auth())
        if reply.status != 200:
            raise NotProcessed(self.name, f"health_http_{reply.status}")
