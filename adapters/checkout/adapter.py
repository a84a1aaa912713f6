"""Checkout.com Unified Payments API: /payments, captures, voids, refunds.

Captures, voids and refunds answer 202 Accepted with an ``action_id``: the
outcome comes by webhook (payment_captured, payment_voided, payment_refunded
and their *_declined forms) or from the payment's action list.

Credentials, as the ``source`` discriminator: ``id`` (``src_...``) and
``token`` (``tok_...``) for its own tokens, ``card`` for a vault card (the
vault fills the fields in), ``network_token`` for Visa (vts) and Mastercard
(mdes) network tokens.  Card on file: ``merchant_initiated``,
``payment_type`` and the first payment's scheme id as ``previous_payment_id``.
3-D Secure: a pending answer's ``_links.redirect`` is surfaced; completing it
is reading the payment after the shopper returns (``success_url`` /
``failure_url``).  ``processing_channel_id`` is sent when configured; keys of
the previous platform (``platform: abc``) go without ``Bearer``.

Status contract (the one map of it):
* 201/202 /payments: ``status`` decides (statuses.STATUS_MAP).
* 202 actions: pending.  403 on an action: that capture/void/refund is not
  allowed for the payment (an answer: declined, operation_refused).
* 429: not processed.  401/403/404/422 otherwise: our integration is wrong;
  422 ``*_invalid`` on the source: the credential is unknown (invalid_credential).
* 409 (same Cko-Idempotency-Key still running), 5xx, unparsable: OutcomeUnknown.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from adapters.base import (
    AcquirerResult,
    Adapter,
    FollowOnOrder,
    NextAction,
    PaymentOrder,
    StatusQuery,
)
from adapters.checkout.declines import DECLINES
from adapters.checkout.settings import CheckoutSettings
from adapters.checkout.statuses import ACTION_TYPES, CAPTURED, STATUS_MAP, A, D, P
from adapters.credentials import (
    AcquirerToken,
    Credential,
    NetworkToken,
    Sequence,
    StoredCredential,
    VaultCard,
)
from adapters.declines import Decline, DeclineCode, normalize
from adapters.errors import CredentialRefused, IntegrationError, NotProcessed, OutcomeUnknown
from adapters.forwarding import card_fields
from adapters.transport import HttpReply

#: Checkout.com's own token formats (PaymentRequestSource ``id`` and ``token``)
_SOURCE_ID = re.compile(r"^src_\w{26}$")
_TOKEN = re.compile(r"^tok_\w{26}$")
#: network token schemes Checkout.com takes, as its token_type
TOKEN_TYPES = {"visa": "vts", "mastercard": "mdes"}
#: our stored-credential sequence -> payment_type
PAYMENT_TYPES = {
    Sequence.RECURRING: "Recurring",
    Sequence.INSTALLMENT: "Installment",
    Sequence.UNSCHEDULED: "Regular",
}
#: 422 error codes that mean the source itself is unknown or unusable
UNKNOWN_SOURCE_CODES = frozenset({"source_id_invalid", "token_invalid", "token_expired"})


def source(credential: Credential) -> dict[str, Any]:
    """The ``source`` object of one credential (the spec's discriminated union)."""
    if isinstance(credential, AcquirerToken):
        kind = "token" if credential.token.startswith("tok_") else "id"
        return {"type": kind, kind: credential.token}
    if isinstance(credential, NetworkToken):
        return {
            "type": "network_token",
            "token": credential.number,
            "expiry_month": credential.expiry_month,
            "expiry_year": credential.expiry_year,
            "token_type": TOKEN_TYPES[credential.scheme],
            **{
                k: v
                for k, v in (("cryptogram", credential.cryptogram), ("eci", credential.eci))
                if v
            },
        }
    fields = card_fields(credential)
    return {
        "type": "card",
        "number": fields.number,
        "expiry_month": fields.expiry_month_int,
        "expiry_year": fields.expiry_year_int,
        "cvv": fields.cvc,
        "name": fields.holder,
    }


def card_on_file(stored: StoredCredential | None) -> dict[str, Any]:
    if stored is None:
        return {}
    fields: dict[str, Any] = {}
    if stored.sequence is not None:
        fields["payment_type"] = PAYMENT_TYPES[stored.sequence]
    if stored.merchant_initiated:
        fields["merchant_initiated"] = True
        if stored.network_transaction_id:
            fields["previous_payment_id"] = stored.network_transaction_id
    return fields


class CheckoutAdapter(Adapter):
    kind = "checkout"
    takes = frozenset({AcquirerToken, VaultCard, NetworkToken})

    @classmethod
    def refuses(cls, credential: Credential) -> str | None:
        if isinstance(credential, NetworkToken) and credential.scheme not in TOKEN_TYPES:
            return f"checkout takes Visa and Mastercard network tokens, not {credential.scheme}"
        return super().refuses(credential)

    @classmethod
    def limits(cls, order: PaymentOrder) -> list[str]:
        credential = order.credential
        if isinstance(credential, AcquirerToken) and not (
            _SOURCE_ID.match(credential.token) or _TOKEN.match(credential.token)
        ):
            return ["tokens are src_ or tok_ followed by 26 characters"]
        return []

    @property
    def _checkout(self) -> CheckoutSettings:
        assert isinstance(self.settings, CheckoutSettings)
        return self.settings

    def _headers(self) -> dict[str, str]:
        key = self._api_key()
        return {"Authorization": key if self._checkout.platform == "abc" else f"Bearer {key}"}

    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        key: str,
        *,
        action: bool,
        card: VaultCard | None = None,
    ) -> AcquirerResult:
        reply = await self.request(
            "POST",
            path,
            json=body,
            headers={**self._headers(), "Cko-Idempotency-Key": key},
            card=card,
        )
        return self._result(reply, action)

    def _result(self, reply: HttpReply, action: bool) -> AcquirerResult:
        status = reply.status
        if status == 429:
            raise NotProcessed(self.name, "rate_limited")
        if status == 403 and action:  # this capture/void/refund is not allowed for the payment
            return AcquirerResult(D, decline=Decline(DeclineCode.OPERATION_REFUSED, "http_403"))
        if status == 422 and _source_refused(reply):
            raise CredentialRefused(self.name, "source_invalid")
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
            return AcquirerResult(P, acquirer_reference=body.get("action_id"))
        raw = body.get("status")
        if raw not in STATUS_MAP:
            raise OutcomeUnknown(self.name, "unexpected_status", str(raw))
        mapped = STATUS_MAP[raw]
        redirect = ((body.get("_links") or {}).get("redirect") or {}).get("href")
        scheme_id = body.get("scheme_id")
        return AcquirerResult(
            mapped,
            acquirer_reference=body.get("id"),
            decline=normalize(body.get("response_code"), DECLINES) if mapped is D else None,
            captured=(raw in CAPTURED) if mapped is A else None,
            next_action=NextAction("redirect", url=redirect) if redirect else None,
            network_transaction_id=scheme_id if isinstance(scheme_id, str) else None,
        )

    def _payment(self, order: PaymentOrder) -> dict[str, Any]:
        body: dict[str, Any] = {
            "source": source(order.credential),
            "amount": order.amount,
            "currency": order.currency,
            "reference": order.payment_id,
            "capture": order.capture,
            "metadata": {**order.metadata, "merchant_reference": order.merchant_reference or ""},
            **card_on_file(order.stored_credential),
        }
        if order.shopper_reference:
            body["metadata"]["shopper_reference"] = order.shopper_reference
        if self._checkout.processing_channel_id:
            body["processing_channel_id"] = self._checkout.processing_channel_id
        return_url = order.return_url or self._checkout.return_url
        if return_url:
            body["success_url"] = body["failure_url"] = return_url
        return body

    async def _create(self, order: PaymentOrder) -> AcquirerResult:
        card = order.credential if isinstance(order.credential, VaultCard) else None
        return await self._post(
            "/payments", self._payment(order), order.idempotency_key, action=False, card=card
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
        metadata = {
            k: v
            for k, v in (("merchant_reference", order.merchant_reference), ("reason", order.reason))
            if v
        }
        body: dict[str, Any] = {"amount": order.amount, "reference": order.refund_id}
        if metadata:
            body["metadata"] = metadata
        return await self._post(
            f"/payments/{order.acquirer_reference}/refunds",
            body,
            order.idempotency_key,
            action=True,
        )

    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        if not query.acquirer_reference:
            return None
        if query.operation.creates:
            reply = await self.request(
                "GET", f"/payments/{query.acquirer_reference}", headers=self._headers()
            )
            return None if reply.status == 404 else self._result(reply, action=False)
        reply = await self.request(
            "GET", f"/payments/{query.acquirer_reference}/actions", headers=self._headers()
        )
        if reply.status != 200:
            return None if reply.status == 404 else self._result(reply, action=False)
        wanted = query.refund_id or query.payment_id
        actions = self.parse_json(reply)
        for item in actions if isinstance(actions, list) else []:
            if not isinstance(item, dict):
                continue
            if ACTION_TYPES.get(str(item.get("type"))) is query.operation and (
                item.get("reference") == wanted
            ):
                approved = bool(item.get("approved"))
                return AcquirerResult(
                    A if approved else D,
                    acquirer_reference=item.get("id"),
                    decline=None if approved else normalize(item.get("response_code"), DECLINES),
                )
        return None

    async def health(self) -> None:
        reply = await self.request("GET", "/payments/pay_healthcheck", headers=self._headers())
        if reply.status in (401, 403):
            raise IntegrationError(self.name, "unauthorized")
        if reply.status >= 500 or reply.status == 429:
            raise NotProcessed(self.name, f"health_http_{reply.status}")


def _source_refused(reply: HttpReply) -> bool:
    """A 422 whose error codes say the source (the credential) is no good."""
    try:
        body = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return False
    codes = body.get("error_codes") if isinstance(body, dict) else None
    return isinstance(codes, list) and any(c in UNKNOWN_SOURCE_CODES for c in codes)
