"""Stripe PaymentIntents and Refunds (API v1, form-encoded, Bearer auth).

Authorize = PaymentIntent with ``capture_method=manual``, sale = ``automatic``,
both ``confirm=true``.  Every POST carries our derived Idempotency-Key, so a
replay returns Stripe's stored answer.

Credentials: Stripe's own payment methods (``pm_...``) only; this API
version takes neither network tokens nor card numbers from outside, so vault
cards and network tokens are not eligible here.  Card on file: a
merchant-initiated payment is ``off_session``, a first customer-initiated one
that stores the card asks ``setup_future_usage=off_session``; a
``shopper_reference`` that is a Stripe customer id (``cus_...``) is sent as
``customer``.  3-D Secure: ``return_url`` is sent with every confirm, and a
``requires_action`` intent's redirect (or SDK data) is surfaced; completing
it is a retrieve after the shopper returns.

Status contract (the one map of it):
* 2xx: the PaymentIntent / Refund status decides (statuses.STATUS_MAP).
* 402 ``card_error``: a decline, with Stripe's ``decline_code``.
* 400 ``resource_missing`` on ``payment_method``: the credential is unknown
  here (a decline: invalid_credential).
* 429: rate limited, not processed.
* 400/401/403/404 otherwise: our integration is wrong.
* 409 (same key still running there), 5xx, unparsable: OutcomeUnknown;
  ``Stripe-Should-Retry: false`` marks a replay as useless.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from adapters.base import (
    AcquirerResult,
    Adapter,
    FollowOnOrder,
    NextAction,
    Operation,
    PaymentOrder,
    StatusQuery,
)
from adapters.credentials import AcquirerToken, StoredCredential, Usage
from adapters.declines import Decline, DeclineCode, normalize
from adapters.errors import CredentialRefused, IntegrationError, NotProcessed, OutcomeUnknown
from adapters.stripe.declines import DECLINES
from adapters.stripe.settings import StripeSettings
from adapters.stripe.statuses import STATUS_MAP, A, D
from adapters.transport import HttpReply

API_VERSION = "2020-08-27"


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


def decline_from(error: dict[str, Any]) -> Decline:
    return normalize(error.get("decline_code") or error.get("code"), DECLINES)


#: a canceled intent's cancellation_reason -> our decline code
CANCELLATIONS = {
    "abandoned": DeclineCode.AUTHENTICATION_EXPIRED,
    "fraudulent": DeclineCode.FRAUD_SUSPECTED,
    "failed_invoice": DeclineCode.PROCESSING_ERROR,
}

#: the reasons Stripe's refunds take (RefundCreateParams.reason)
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def _decline_of(obj: dict[str, Any]) -> Decline:
    """Why an intent did not go through: its last payment error, or, for an
    intent canceled before it was paid, the cancellation reason."""
    error = obj.get("last_payment_error")
    if isinstance(error, dict) and error:
        return decline_from(error)
    reason = obj.get("cancellation_reason")
    if isinstance(reason, str) and reason:
        return Decline(CANCELLATIONS.get(reason, DeclineCode.CANCELLED), reason)
    return normalize(None, DECLINES)


def _unknown_method(error: dict[str, Any]) -> bool:
    """Stripe does not know the payment method (a token issued elsewhere)."""
    return error.get("code") == "resource_missing" and error.get("param") == "payment_method"


def _card_on_file(stored: StoredCredential | None) -> dict[str, Any]:
    if stored is None:
        return {}
    if stored.merchant_initiated:
        return {"off_session": True}
    if stored.usage is Usage.FIRST:
        return {"setup_future_usage": "off_session"}
    return {}


def next_action_from(intent: dict[str, Any]) -> NextAction | None:
    """A requires_action intent: where to send the shopper, or the SDK's data."""
    action = intent.get("next_action")
    if not isinstance(action, dict):
        return None
    redirect = action.get("redirect_to_url")
    if isinstance(redirect, dict) and redirect.get("url"):
        return NextAction("redirect", url=str(redirect["url"]))
    sdk = action.get("use_stripe_sdk")
    if isinstance(sdk, dict):
        return NextAction("sdk", data={"client_secret": intent.get("client_secret"), **sdk})
    return None


def network_transaction_id_from(intent: dict[str, Any]) -> str | None:
    """The scheme's id, from the intent's charge (API 2020-08-27 lists them)."""
    charges = intent.get("charges")
    data = charges.get("data") if isinstance(charges, dict) else None
    for charge in data if isinstance(data, list) else []:
        details = charge.get("payment_method_details") if isinstance(charge, dict) else None
        card = details.get("card") if isinstance(details, dict) else None
        ntid = card.get("network_transaction_id") if isinstance(card, dict) else None
        if isinstance(ntid, str) and ntid:
            return ntid
    return None


class StripeAdapter(Adapter):
    kind = "stripe"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key()}", "Stripe-Version": API_VERSION}

    async def _post(
        self, path: str, params: dict[str, Any], key: str, op: Operation
    ) -> AcquirerResult:
        reply = await self.request(
            "POST",
            path,
            data=form_body(params),
            headers={
                **self._headers(),
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
        error = error if isinstance(error, dict) else {}
        if status == 402 and error.get("type") == "card_error":
            intent = error.get("payment_intent") or {}
            return AcquirerResult(
                D,
                acquirer_reference=intent.get("id") if isinstance(intent, dict) else None,
                decline=decline_from(error),
            )
        if status == 429:
            raise NotProcessed(self.name, "rate_limited")
        if status == 400 and _unknown_method(error):
            raise CredentialRefused(self.name, str(error.get("code")))
        if status in (400, 401, 403, 404):
            raise IntegrationError(
                self.name,
                str(error.get("type") or f"http_{status}"),
                str(error.get("message", ""))[:200],
            )
        raise OutcomeUnknown(self.name, f"http_{status}", replayable=replayable)

    def _from_object(self, obj: Any, op: Operation) -> AcquirerResult:
        if not isinstance(obj, dict) or str(obj.get("status")) not in STATUS_MAP[op]:
            raise OutcomeUnknown(self.name, "unexpected_status", repr(obj)[:200])
        raw = str(obj["status"])
        mapped = STATUS_MAP[op][raw]
        return AcquirerResult(
            mapped,
            acquirer_reference=obj.get("id"),
            decline=_decline_of(obj) if mapped is D else None,
            captured=(raw == "succeeded") if op.creates and mapped is A else None,
            next_action=next_action_from(obj) if raw == "requires_action" else None,
            network_transaction_id=network_transaction_id_from(obj),
        )

    def _intent(self, order: PaymentOrder) -> dict[str, Any]:
        assert isinstance(order.credential, AcquirerToken)
        shopper = order.shopper_reference
        return {
            "amount": order.amount,
            "currency": order.currency.lower(),
            "payment_method": order.credential.token,
            "confirm": True,
            "capture_method": "automatic" if order.capture else "manual",
            "customer": shopper if shopper and shopper.startswith("cus_") else None,
            "return_url": order.return_url or self._stripe.return_url,
            "description": order.description,
            "metadata": {
                **order.metadata,
                "payrouter_payment_id": order.payment_id,
                "merchant_reference": order.merchant_reference,
            },
            **_card_on_file(order.stored_credential),
        }

    @property
    def _stripe(self) -> StripeSettings:
        assert isinstance(self.settings, StripeSettings)
        return self.settings

    async def _create(self, order: PaymentOrder) -> AcquirerResult:
        return await self._post(
            "/v1/payment_intents", self._intent(order), order.idempotency_key, order.operation
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
        params: dict[str, Any] = {
            "payment_intent": order.acquirer_reference,
            "amount": order.amount,
            "metadata": {
                "payrouter_refund_id": order.refund_id,
                "payrouter_payment_id": order.payment_id,
                "merchant_reference": order.merchant_reference,
                "reason": order.reason,
            },
        }
        if order.reason in REFUND_REASONS:  # Stripe's own vocabulary, when ours is in it
            params["reason"] = order.reason
        return await self._post("/v1/refunds", params, order.idempotency_key, Operation.REFUND)

    async def status(self, query: StatusQuery) -> AcquirerResult | None:
        """Stripe cannot look up by idempotency key: a PaymentIntent is read by
        its id, or found by the payment id in its metadata (search, which
        trails writes by up to a minute); a refund is found among its
        PaymentIntent's refunds by the refund id in its metadata."""
        if query.operation is Operation.REFUND:
            return await self._refund_status(query)
        if not query.acquirer_reference:
            return await self.find(query) if query.operation.creates else None
        reply = await self.request(
            "GET", f"/v1/payment_intents/{query.acquirer_reference}", headers=self._headers()
        )
        if reply.status == 404:
            return None
        return self._result(reply, query.operation)

    async def _refund_status(self, query: StatusQuery) -> AcquirerResult | None:
        if not query.acquirer_reference or not query.refund_id:
            return None
        reply = await self.request(
            "GET",
            f"/v1/refunds?payment_intent={query.acquirer_reference}&limit=100",
            headers=self._headers(),
        )
        if reply.status == 404:
            return None
        if reply.status != 200:
            return self._result(reply, Operation.REFUND)
        listing = self.parse_json(reply)
        for refund in listing.get("data", []) if isinstance(listing, dict) else []:
            metadata = refund.get("metadata") if isinstance(refund, dict) else None
            if (
                isinstance(metadata, dict)
                and metadata.get("payrouter_refund_id") == query.refund_id
            ):
                return self._from_object(refund, Operation.REFUND)
        return None

    async def find(self, query: StatusQuery) -> AcquirerResult | None:
        """The PaymentIntent whose metadata names our payment (Stripe search)."""
        search = quote(f"metadata['payrouter_payment_id']:'{query.payment_id}'", safe="")
        reply = await self.request(
            "GET", f"/v1/payment_intents/search?query={search}&limit=1", headers=self._headers()
        )
        if reply.status != 200:
            return None if reply.status == 404 else self._result(reply, query.operation)
        found = self.parse_json(reply)
        data = found.get("data") if isinstance(found, dict) else None
        if not isinstance(data, list) or not data:
            return None
        return self._from_object(data[0], query.operation)

    async def abandon(self, query: StatusQuery) -> AcquirerResult | None:
        """Cancel an intent the shopper never authenticated, then read it: the
        create's answer is whatever the intent became (canceled, or approved
        if the shopper finished in the meantime)."""
        if not query.acquirer_reference:
            return None
        await self._post(
            f"/v1/payment_intents/{query.acquirer_reference}/cancel",
            {"cancellation_reason": "abandoned"},
            query.idempotency_key[:40] + "-abandon",
            Operation.VOID,
        )
        return await self.status(query)

    async def health(self) -> None:
        reply = await self.request("GET", "/v1/payment_intents?limit=1", headers=self._headers())
        if reply.status >= 500 or reply.status == 429:
            raise NotProcessed(self.name, f"health_http_{reply.status}")
        if reply.status in (401, 403):
            raise IntegrationError(self.name, "unauthorized")
