"""Adyen Checkout API v71: /payments and the modification endpoints.

Captures, cancels and refunds are asynchronous at Adyen: the API answers 201
``{"status": "received"}`` and the outcome arrives by webhook (CAPTURE,
CANCELLATION, REFUND with success true/false).  They are PENDING here and the
webhook settles them.

Credentials: a stored payment method id (``storedPaymentMethodId``, with
the ``shopperReference`` it belongs to), a vault card (``scheme`` card fields
the vault fills in) or a network token (``networkToken`` with the cryptogram
in ``mpiData``).  Card on file: ``shopperInteraction`` and
``recurringProcessingModel`` from the stored-credential facts, and the
scheme's id of the first payment as ``networkPaymentReference``.  3-D Secure:
a ``RedirectShopper``/``ChallengeShopper``/``IdentifyShopper`` answer carries
its ``action`` (redirect URL, method and data, or the 3DS2 SDK's data);
``/payments/details`` completes it.  Adyen's checkout API has no lookup:
unknown and pending outcomes are settled by replays and webhooks only.

Status contract (the one map of it):
* 200 /payments and /payments/details: ``resultCode`` decides (statuses.RESULT_CODES).
* 201 modifications: pending, settled by webhook.
* 429, or a 5xx with ``Transient-Error: true``: not processed (Adyen documents
  these as safe to retry with the same key).
* 422 with errorCode 800 (contract not found): the stored payment method is
  unknown here (a decline: invalid_credential).
* 400/401/403/422 otherwise: our integration is wrong.
* any other 5xx, unparsable: OutcomeUnknown.
"""

from __future__ import annotations

from typing import Any

from adapters.adyen.declines import DECLINES
from adapters.adyen.settings import AdyenSettings
from adapters.adyen.statuses import RESULT_CODES, A, D, P
from adapters.base import (
    AcquirerResult,
    Adapter,
    AuthenticationOrder,
    FollowOnOrder,
    NextAction,
    PaymentOrder,
    StatusQuery,
)
from adapters.credentials import (
    AcquirerToken,
    Credential,
    NetworkToken,
    Sequence,
    StoredCredential,
    Usage,
    VaultCard,
)
from adapters.declines import normalize
from adapters.errors import CredentialRefused, IntegrationError, NotProcessed, OutcomeUnknown
from adapters.forwarding import card_fields
from adapters.transport import HttpReply

MAX_IDEMPOTENCY_KEY = 64
#: PaymentRequest limits (Checkout v71): a longer token, more metadata, are 422s there
MAX_TOKEN = 64
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 20, 20, 80
#: errorCode of a 422 that means "no such stored payment method for this shopper"
UNKNOWN_CREDENTIAL_CODES = frozenset({"800"})
#: our stored-credential sequence -> recurringProcessingModel
PROCESSING_MODELS = {
    Sequence.RECURRING: "Subscription",
    Sequence.UNSCHEDULED: "UnscheduledCardOnFile",
    Sequence.INSTALLMENT: "Subscription",
}
#: our refund reasons that Adyen has a word for (merchantRefundReason)
REFUND_REASONS = {
    "fraud": "FRAUD",
    "fraudulent": "FRAUD",
    "requested_by_customer": "CUSTOMER REQUEST",
    "customer request": "CUSTOMER REQUEST",
    "return": "RETURN",
    "duplicate": "DUPLICATE",
}


def next_action_from(action: Any) -> NextAction | None:
    """A redirect (URL, method, form data) or the 3DS2 SDK's action, as Adyen sent it."""
    if not isinstance(action, dict):
        return None
    if action.get("url"):
        given = action.get("data")
        data: dict[str, Any] = given if isinstance(given, dict) else {}
        return NextAction(
            "redirect", url=str(action["url"]), method=str(action.get("method") or "GET"), data=data
        )
    return NextAction("sdk", data=action)


def payment_method(credential: Credential, stored: StoredCredential | None) -> dict[str, Any]:
    """The ``paymentMethod`` object of one credential."""
    if isinstance(credential, AcquirerToken):
        return {"type": "scheme", "storedPaymentMethodId": credential.token}
    if isinstance(credential, NetworkToken):
        method: dict[str, Any] = {
            "type": "networkToken",
            "number": credential.number,
            "expiryMonth": f"{credential.expiry_month:02d}",
            "expiryYear": str(credential.expiry_year),
        }
    else:
        fields = card_fields(credential)
        method = {
            "type": "scheme",
            "number": fields.number,
            "expiryMonth": fields.expiry_month,
            "expiryYear": fields.expiry_year,
            "cvc": fields.cvc,
            "holderName": fields.holder,
        }
    if stored is not None and stored.merchant_initiated and stored.network_transaction_id:
        method["networkPaymentReference"] = stored.network_transaction_id
    return method


def interaction(credential: Credential, stored: StoredCredential | None) -> dict[str, Any]:
    """``shopperInteraction`` and ``recurringProcessingModel``: Adyen wants both
    whenever stored card details are used or stored."""
    if stored is None:
        if isinstance(credential, AcquirerToken):  # a stored method, the shopper present
            return {"shopperInteraction": "ContAuth", "recurringProcessingModel": "CardOnFile"}
        return {"shopperInteraction": "Ecommerce"}
    model = (
        PROCESSING_MODELS.get(stored.sequence, "CardOnFile") if stored.sequence else "CardOnFile"
    )
    if stored.merchant_initiated:
        return {"shopperInteraction": "ContAuth", "recurringProcessingModel": model}
    first = stored.usage is Usage.FIRST
    return {
        "shopperInteraction": "Ecommerce" if first else "ContAuth",
        "recurringProcessingModel": model,
        **({"storePaymentMethod": True} if first else {}),
    }


class AdyenAdapter(Adapter):
    kind = "adyen"
    takes = frozenset({AcquirerToken, VaultCard, NetworkToken})

    @property
    def _adyen(self) -> AdyenSettings:
        assert isinstance(self.settings, AdyenSettings)
        return self.settings

    def _headers(self) -> dict[str, str]:
        return {"X-API-Key": self._api_key()}

    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        key: str,
        *,
        modification: bool,
        card: VaultCard | None = None,
    ) -> AcquirerResult:
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise IntegrationError(self.name, "idempotency_key_too_long", key)
        reply = await self.request(
            "POST", path, json=body, headers={**self._headers(), "Idempotency-Key": key}, card=card
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
            if status == 422 and str(code) in UNKNOWN_CREDENTIAL_CODES:
                raise CredentialRefused(self.name, f"adyen_{code}")
            raise IntegrationError(self.name, f"adyen_{code}", str(error)[:200])
        if status not in (200, 201):
            raise OutcomeUnknown(self.name, f"http_{status}")
        body = self.parse_json(reply)
        if not isinstance(body, dict):
            raise OutcomeUnknown(self.name, "unexpected_body")
        if modification:
            if body.get("status") != "received":
                raise OutcomeUnknown(self.name, "unexpected_modification_status", str(body)[:200])
            return AcquirerResult(P, acquirer_reference=body.get("pspReference"))
        return self._payment_result(body)

    def _payment_result(self, body: dict[str, Any]) -> AcquirerResult:
        code = body.get("resultCode")
        if code not in RESULT_CODES:
            raise OutcomeUnknown(self.name, "unexpected_result_code", str(code))
        mapped = RESULT_CODES[code]
        extra = body.get("additionalData")
        ntid = extra.get("networkTxReference") if isinstance(extra, dict) else None
        return AcquirerResult(
            mapped,
            acquirer_reference=body.get("pspReference"),
            decline=normalize(body.get("refusalReasonCode") or code, DECLINES)
            if mapped is D
            else None,
            captured=False if mapped is A else None,
            next_action=next_action_from(body.get("action")),
            network_transaction_id=ntid if isinstance(ntid, str) else None,
        )

    @classmethod
    def limits(cls, order: PaymentOrder) -> list[str]:
        broken = []
        credential = order.credential
        if isinstance(credential, AcquirerToken):
            if len(credential.token) > MAX_TOKEN:
                broken.append(f"stored payment method ids are at most {MAX_TOKEN} characters")
            if not order.shopper_reference:
                broken.append("a stored payment method needs the shopper_reference it belongs to")
        if len(order.metadata) > MAX_METADATA_PAIRS:
            broken.append(f"metadata is at most {MAX_METADATA_PAIRS} pairs")
        if any(len(k) > MAX_METADATA_KEY for k in order.metadata):
            broken.append(f"metadata keys are at most {MAX_METADATA_KEY} characters")
        if any(len(v) > MAX_METADATA_VALUE for v in order.metadata.values()):
            broken.append(f"metadata values are at most {MAX_METADATA_VALUE} characters")
        return broken

    def _payment(self, order: PaymentOrder) -> dict[str, Any]:
        body: dict[str, Any] = {
            "amount": {"value": order.amount, "currency": order.currency},
            "merchantAccount": self._adyen.merchant_account,
            "paymentMethod": payment_method(order.credential, order.stored_credential),
            "reference": order.payment_id,
            "returnUrl": order.return_url or self._adyen.return_url,
            **interaction(order.credential, order.stored_credential),
        }
        if isinstance(order.credential, NetworkToken):
            body["mpiData"] = {
                k: v
                for k, v in (
                    ("tokenAuthenticationVerificationValue", order.credential.cryptogram),
                    ("eci", order.credential.eci),
                )
                if v
            }
        if order.shopper_reference:
            body["shopperReference"] = order.shopper_reference
        if order.merchant_reference:
            body["merchantOrderReference"] = order.merchant_reference
        if order.metadata:
            body["metadata"] = dict(order.metadata)
        if order.capture:
            body["captureDelayHours"] = 0
        else:
            body["additionalData"] = {"manualCapture": "true"}
        return body

    async def _create(self, order: PaymentOrder) -> AcquirerResult:
        card = order.credential if isinstance(order.credential, VaultCard) else None
        return await self._post(
            "/payments", self._payment(order), order.idempotency_key, modification=False, card=card
        )

    async def authenticate(self, order: AuthenticationOrder) -> AcquirerResult:
        """Submit what came back from the shopper's 3-D Secure (``redirectResult``,
        ``threeDSResult``, ...) to /payments/details."""
        return await self._post(
            "/payments/details",
            {"details": dict(order.details)},
            order.idempotency_key,
            modification=False,
        )

    def _modification(self, order: FollowOnOrder, with_amount: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "merchantAccount": self._adyen.merchant_account,
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
        body = self._modification(order, True)
        if order.reason:
            body["merchantRefundReason"] = REFUND_REASONS.get(order.reason.lower(), "OTHER")
        return await self._post(
            f"/payments/{order.acquirer_reference}/refunds",
            body,
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
            json={"merchantAccount": self._adyen.merchant_account},
            headers=self._headers(),
        )
        if reply.status in (401, 403):
            raise IntegrationError(self.name, "unauthorized")
        if reply.status != 200:
            raise NotProcessed(self.name, f"health_http_{reply.status}")
