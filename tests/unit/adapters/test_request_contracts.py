"""Every request payrouter builds, validated against the acquirer's published
API description (tests/fixtures): creates with each credential type and each
card-on-file use, captures, voids, refunds and 3-D Secure details.

A forwarded card is validated as the acquirer receives it: after the vault
has filled the card into the placeholders the adapter wrote.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import jsonschema
import pytest
from aioresponses import aioresponses

from adapters.adyen.adapter import AdyenAdapter
from adapters.adyen.settings import AdyenSettings
from adapters.base import AcquirerResult, Adapter, AuthenticationOrder, PaymentOrder
from adapters.checkout.adapter import CheckoutAdapter
from adapters.checkout.settings import CheckoutSettings
from adapters.credentials import (
    AcquirerToken,
    Credential,
    Initiator,
    NetworkToken,
    Sequence,
    StoredCredential,
    Usage,
    VaultCard,
)
from adapters.forwarding import Forwarder, Outbound, reveal
from adapters.stripe.adapter import StripeAdapter
from adapters.stripe.settings import StripeSettings
from adapters.transport import HttpReply
from tests import specs
from tests.unit.adapters.schemas import unknown_keys, validate
from tests.unit.adapters.wire import BASE, FOLLOW, ORDER, key

#: what the vault holds for "vault_visa" (the sandbox vault's test card)
CARDS = {
    "vault_visa": {
        "number": "4242424242424242",
        "cvc": "123",
        "holder": "Ada Lovelace",
        "exp_month": 3,
        "exp_year": 2030,
    }
}
VAULT_CARD = VaultCard("cards", "vault_visa")
NETWORK_TOKEN = NetworkToken(
    number="4895370012003478",
    expiry_month=12,
    expiry_year=2031,
    scheme="visa",
    cryptogram="AgAAAAAABk4DWZ4C28yUQAAAAAA=",
    eci="05",
)
STORED = {
    "none": None,
    "customer_first": StoredCredential(Initiator.CUSTOMER, Usage.FIRST, Sequence.RECURRING),
    "customer_again": StoredCredential(Initiator.CUSTOMER, Usage.SUBSEQUENT),
    "merchant_recurring": StoredCredential(
        Initiator.MERCHANT, Usage.SUBSEQUENT, Sequence.RECURRING, "MCC123456789012"
    ),
    "merchant_unscheduled": StoredCredential(
        Initiator.MERCHANT, Usage.SUBSEQUENT, Sequence.UNSCHEDULED, "483297487231504"
    ),
    "merchant_installment": StoredCredential(
        Initiator.MERCHANT, Usage.SUBSEQUENT, Sequence.INSTALLMENT, "483297487231504"
    ),
}


@dataclasses.dataclass
class RecordingVault:
    """A forwarder that keeps what the adapter sent and answers for the acquirer."""

    answer: HttpReply
    name: str = "cards"
    sent: list[Outbound] = dataclasses.field(default_factory=list)

    async def send(
        self, session: aiohttp.ClientSession, request: Outbound, card: VaultCard, **kwargs: Any
    ) -> HttpReply:
        self.sent.append(request)
        return self.answer


def _order(credential: Credential, stored: str, **extra: Any) -> PaymentOrder:
    fields: dict[str, Any] = {
        "shopper_reference": "shopper-42",
        "return_url": "https://shop.example/back",
        **extra,
    }
    return dataclasses.replace(
        ORDER, credential=credential, stored_credential=STORED[stored], **fields
    )


async def _sent_json(
    adapter: Adapter, vault: RecordingVault, order: PaymentOrder, url: str, answer: Any
) -> dict[str, Any]:
    """The create body as the acquirer receives it (revealed, if forwarded)."""
    with aioresponses() as mock:
        mock.post(url, status=200, payload=answer)
        await adapter.create(order)
        if isinstance(order.credential, VaultCard):
            assert not mock.requests  # forwarded, never sent straight
            (outbound,) = vault.sent
            assert outbound.url == url
            assert b"4242424242424242" not in outbound.body  # the router never had it
            body: dict[str, Any] = json.loads(reveal(outbound.body, CARDS))
            return body
        (calls,) = mock.requests.values()
        return dict(json.loads(calls[0].kwargs["data"]))


async def _follow_on(
    adapter: Adapter, call: str, path: str, status: int, answer: dict[str, Any]
) -> tuple[AcquirerResult, dict[str, Any]]:
    """A capture, void or refund (with a reason and a reference) of ``ref_1``:
    its result, and the JSON body the acquirer received."""
    follow = dataclasses.replace(FOLLOW, reason="duplicate", merchant_reference="order-7")
    with aioresponses() as mock:
        mock.post(f"{BASE}/payments/ref_1/{path}", status=status, payload=answer)
        result = await getattr(adapter, call)(follow)
        (calls,) = mock.requests.values()
    return result, dict(json.loads(calls[0].kwargs["data"]))


def _vaults(answer: Mapping[str, Any]) -> RecordingVault:
    return RecordingVault(HttpReply(200, {}, json.dumps(answer).encode()))


# ------------------------------------------------------------------ Adyen

ADYEN_ANSWER = {"pspReference": "PSP1", "resultCode": "Authorised"}
ADYEN_CREDENTIALS: dict[str, Credential] = {
    "stored_method": AcquirerToken("8416038790273850"),
    "vault_card": VAULT_CARD,
    "network_token": NETWORK_TOKEN,
}


def _adyen(session: aiohttp.ClientSession, vault: RecordingVault) -> AdyenAdapter:
    settings = AdyenSettings(
        base_url=BASE,
        api_key=key("AQE_key_xxxxxx"),
        merchant_account="ShopECOM",
        return_url="https://shop.example/return",
    )
    forwarders: dict[str, Forwarder] = {"cards": vault}
    return AdyenAdapter("adyen", settings, session, BASE, vaults=forwarders)


@pytest.mark.parametrize("stored", sorted(STORED))
@pytest.mark.parametrize("credential", sorted(ADYEN_CREDENTIALS))
@pytest.mark.parametrize("capture", [False, True])
async def test_adyen_payments_requests_validate(
    session: aiohttp.ClientSession, credential: str, stored: str, capture: bool
) -> None:
    vault = _vaults(ADYEN_ANSWER)
    order = _order(ADYEN_CREDENTIALS[credential], stored, capture=capture)
    body = await _sent_json(_adyen(session, vault), vault, order, f"{BASE}/payments", ADYEN_ANSWER)
    validate(specs.adyen(), "PaymentRequest", body)
    method = body["paymentMethod"]
    assert method["type"] == {"network_token": "networkToken"}.get(credential, "scheme")
    assert body["shopperReference"] == "shopper-42"
    given = STORED[stored]
    if given is not None and given.merchant_initiated:
        assert body["shopperInteraction"] == "ContAuth"
        # a method Adyen stores carries its scheme id there; others carry ours
        expected = None if credential == "stored_method" else given.network_transaction_id
        assert method.get("networkPaymentReference") == expected
    if credential == "network_token":
        assert body["mpiData"] == {
            "tokenAuthenticationVerificationValue": NETWORK_TOKEN.cryptogram,
            "eci": "05",
        }


async def test_adyen_payment_details_request_validates(session: aiohttp.ClientSession) -> None:
    adapter = _adyen(session, _vaults({}))
    order = AuthenticationOrder(
        payment_id="pay_1",
        acquirer_reference="PSP1",
        idempotency_key="pr_auth",
        details={"redirectResult": "X6XtfGC3!Y..."},
        capture=True,
        create_key="pr_create",
    )
    with aioresponses() as mock:
        mock.post(f"{BASE}/payments/details", status=200, payload=ADYEN_ANSWER)
        result = await adapter.authenticate(order)
        (calls,) = mock.requests.values()
    body = json.loads(calls[0].kwargs["data"])
    validate(specs.adyen(), "PaymentDetailsRequest", body)
    assert body == {"details": {"redirectResult": "X6XtfGC3!Y..."}}
    assert calls[0].kwargs["headers"]["Idempotency-Key"] == "pr_auth"
    assert result.approved


@pytest.mark.parametrize(
    ("call", "path", "schema"),
    [
        ("capture", "captures", "PaymentCaptureRequest"),
        ("void", "cancels", "PaymentCancelRequest"),
        ("refund", "refunds", "PaymentRefundRequest"),
    ],
)
async def test_adyen_modifications_validate(
    session: aiohttp.ClientSession, call: str, path: str, schema: str
) -> None:
    adapter = _adyen(session, _vaults({}))
    _, body = await _follow_on(adapter, call, path, 201, {"status": "received"})
    validate(specs.adyen(), schema, body)
    if call == "refund":
        assert (body["reference"], body["merchantRefundReason"]) == ("re_1", "DUPLICATE")


# ------------------------------------------------------------------ Checkout.com

CKO_ANSWER = {"id": "pay_cko", "status": "Authorized", "approved": True}
CKO_CREDENTIALS: dict[str, Credential] = {
    "source_id": AcquirerToken("src_" + "wmlfc3zyhqzehihu7giusaaawu"),
    "frames_token": AcquirerToken("tok_" + "ubfj2q76miwundwlk72vxt2i7q"),
    "vault_card": VAULT_CARD,
    "network_token": NETWORK_TOKEN,
}
SOURCE_TYPES = {
    "source_id": "id",
    "frames_token": "token",
    "vault_card": "card",
    "network_token": "network_token",
}


def _checkout(session: aiohttp.ClientSession, vault: RecordingVault) -> CheckoutAdapter:
    settings = CheckoutSettings(
        base_url=BASE,
        api_key=key("sk_sbox_xxxxxxxx"),
        processing_channel_id="pc_" + "a" * 26,
        return_url="https://shop.example/back",
    )
    forwarders: dict[str, Forwarder] = {"cards": vault}
    return CheckoutAdapter("cko", settings, session, BASE, vaults=forwarders)


@pytest.mark.parametrize("stored", sorted(STORED))
@pytest.mark.parametrize("credential", sorted(CKO_CREDENTIALS))
async def test_checkout_payment_requests_validate_with_each_source_type(
    session: aiohttp.ClientSession, credential: str, stored: str
) -> None:
    vault = _vaults(CKO_ANSWER)
    order = _order(CKO_CREDENTIALS[credential], stored)
    body = await _sent_json(_checkout(session, vault), vault, order, f"{BASE}/payments", CKO_ANSWER)
    validate(specs.checkout(), "PaymentRequest", body)
    assert unknown_keys(specs.checkout(), "PaymentRequest", body) == set()
    assert body["source"]["type"] == SOURCE_TYPES[credential]
    assert body["processing_channel_id"] == "pc_" + "a" * 26
    given = STORED[stored]
    if given is not None and given.merchant_initiated:
        assert body["merchant_initiated"] is True
        assert body["previous_payment_id"] == given.network_transaction_id


def test_the_checkout_schema_check_follows_the_source_discriminator() -> None:
    """The validator would catch a malformed source (a test of the test)."""
    wrong = [
        {"type": "id", "id": "pm_card_visa"},  # not src_ + 26
        {"type": "network_token", "token": "4895370012003478"},  # no expiry, type, cryptogram
        {"type": "card", "number": "4242424242424242", "expiry_month": "03", "expiry_year": 2030},
        {"type": "nonsense"},
    ]
    for source in wrong:
        with pytest.raises(jsonschema.ValidationError):
            validate(specs.checkout(), "PaymentRequest", {"currency": "EUR", "source": source})


@pytest.mark.parametrize(
    ("call", "path", "schema"),
    [
        ("capture", "captures", "CaptureRequest"),
        ("void", "voids", "VoidRequest"),
        ("refund", "refunds", "RefundRequest"),
    ],
)
async def test_checkout_actions_validate(
    session: aiohttp.ClientSession, call: str, path: str, schema: str
) -> None:
    adapter = _checkout(session, _vaults({}))
    result, body = await _follow_on(adapter, call, path, 202, {"action_id": "act_1"})
    validate(specs.checkout(), schema, body)
    assert unknown_keys(specs.checkout(), schema, body) == set()
    assert result.acquirer_reference == "act_1"


# ------------------------------------------------------------------ Stripe


def _stripe_params(path: str) -> dict[str, Any]:
    op = specs.stripe()["paths"][path]["post"]
    schema = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return dict(schema["properties"])


def _form_errors(pairs: list[tuple[str, str]], properties: dict[str, Any]) -> list[str]:
    """Each ``a[b][c]`` key must follow the schema's properties (or a map's
    additionalProperties) and land on a scalar: what Stripe would refuse."""
    errors = []
    for name, _ in pairs:
        parts = name.replace("]", "").split("[")
        node: dict[str, Any] = {"properties": properties}
        for part in parts:
            options = [node, *node.get("anyOf", [])]
            nxt = next(
                (o["properties"][part] for o in options if part in o.get("properties", {})), None
            )
            if nxt is None:
                nxt = next(
                    (
                        o["additionalProperties"]
                        for o in options
                        if isinstance(o.get("additionalProperties"), dict)
                    ),
                    None,
                )
            if nxt is None:
                errors.append(name)
                break
            node = nxt
    return errors


def _stripe(session: aiohttp.ClientSession) -> StripeAdapter:
    settings = StripeSettings(
        base_url=BASE, api_key=key("sk_test_xxxxxxxx"), return_url="https://shop.example/r"
    )
    return StripeAdapter("stripe", settings, session, BASE)


@pytest.mark.parametrize("stored", sorted(STORED))
async def test_stripe_payment_intent_creates_follow_the_spec(
    session: aiohttp.ClientSession, stored: str
) -> None:
    order = _order(AcquirerToken("pm_card_visa"), stored, shopper_reference="cus_9s6XKzkNRiz8i3")
    with aioresponses() as mock:
        mock.post(
            f"{BASE}/v1/payment_intents", status=200, payload={"id": "pi_1", "status": "succeeded"}
        )
        await _stripe(session).create(order)
        (calls,) = mock.requests.values()
    pairs = parse_qsl(calls[0].kwargs["data"])
    assert _form_errors(pairs, _stripe_params("/v1/payment_intents")) == []
    params = dict(pairs)
    assert (params["customer"], params["return_url"]) == (
        "cus_9s6XKzkNRiz8i3",
        "https://shop.example/back",
    )
    given = STORED[stored]
    assert ("off_session" in params) is bool(given and given.merchant_initiated)
    assert params.get("setup_future_usage") == (
        "off_session" if given is not None and given.usage is Usage.FIRST else None
    )


@pytest.mark.parametrize(
    ("call", "path", "spec_path"),
    [
        ("capture", "/v1/payment_intents/ref_1/capture", "/v1/payment_intents/{intent}/capture"),
        ("void", "/v1/payment_intents/ref_1/cancel", "/v1/payment_intents/{intent}/cancel"),
        ("refund", "/v1/refunds", "/v1/refunds"),
    ],
)
async def test_stripe_follow_ons_follow_the_spec(
    session: aiohttp.ClientSession, call: str, path: str, spec_path: str
) -> None:
    answer = {"capture": "succeeded", "void": "canceled", "refund": "succeeded"}[call]
    follow = dataclasses.replace(FOLLOW, reason="duplicate", merchant_reference="order-7")
    with aioresponses() as mock:
        mock.post(f"{BASE}{path}", status=200, payload={"id": "x_1", "status": answer})
        await getattr(_stripe(session), call)(follow)
        (calls,) = mock.requests.values()
    pairs = parse_qsl(calls[0].kwargs["data"])
    assert _form_errors(pairs, _stripe_params(spec_path)) == []
    if call == "refund":
        assert dict(pairs)["reason"] == "duplicate"
        assert dict(pairs)["metadata[merchant_reference]"] == "order-7"


def test_the_stripe_form_check_would_catch_a_misspelt_parameter() -> None:
    properties = _stripe_params("/v1/payment_intents")
    assert _form_errors([("off_sesion", "true"), ("metadata[x]", "y")], properties) == [
        "off_sesion"
    ]
