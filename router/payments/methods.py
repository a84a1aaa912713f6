"""Payment methods: where each one can be used, and in which form it goes there.

A payment method is not one string that every acquirer understands:

* acquirer tokens work only where they were issued (a token per acquirer
  name, or per kind for every acquirer of that kind);
* a vault card works at every acquirer its vault forwards to and whose
  adapter writes card requests (the vault fills the card in on the way);
* a network token works at every acquirer whose API takes network tokens.

:func:`eligibility` answers, for every acquirer, "usable" or why not; routing
keeps only the usable ones, so failover never sends a credential where it
cannot work, and a routing hint to an ineligible acquirer is refused with
the reason.  :func:`credential_for` turns the API's method into the
:mod:`adapters.credentials` value one adapter is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from adapters.base import PaymentOrder
from adapters.credentials import AcquirerToken, Credential, NetworkToken, VaultCard
from adapters.forwarding import VaultSettings
from adapters.registry import CONNECTORS
from adapters.values import frozen
from router.pan import Path
from router.payments.models import AcquirerTokens, CreatePayment, NetworkTokenMethod, VaultToken
from router.payments.records import MethodSummary

Method = AcquirerTokens | VaultToken | NetworkTokenMethod


@frozen
class Ineligible:
    reason: str


@frozen
class Where:
    """An acquirer, as far as credentials go: its name and its kind."""

    name: str
    kind: str


def _token_for(method: AcquirerTokens, acquirer: Where) -> str | None:
    return method.tokens.get(acquirer.name) or method.tokens.get(acquirer.kind)


def usable(
    request: CreatePayment, acquirer: Where, vaults: Mapping[str, VaultSettings]
) -> Credential | Ineligible:
    """The credential this acquirer gets for this payment, unless the method
    cannot go there or the payment breaks a limit of that acquirer's API."""
    outcome = credential_for(request.method, acquirer, vaults)
    if isinstance(outcome, Ineligible):
        return outcome
    probe = PaymentOrder(
        payment_id="",
        amount=request.amount,
        currency=request.currency,
        credential=outcome,
        capture=request.capture,
        idempotency_key="",
        merchant_reference=request.merchant_reference,
        metadata=request.metadata,
        shopper_reference=request.shopper_reference,
    )
    broken = CONNECTORS[acquirer.kind].adapter.limits(probe)
    return Ineligible("; ".join(broken)) if broken else outcome


def credential_for(
    method: Method, acquirer: Where, vaults: Mapping[str, VaultSettings]
) -> Credential | Ineligible:
    credential: Credential
    if isinstance(method, AcquirerTokens):
        token = _token_for(method, acquirer)
        if token is None:
            return Ineligible("no token issued by this acquirer")
        credential = AcquirerToken(token)
    elif isinstance(method, VaultToken):
        vault = vaults.get(method.vault)
        if vault is None:
            return Ineligible(f"no vault {method.vault!r} in the config")
        if not vault.forwards_to(acquirer.name):
            return Ineligible(f"vault {method.vault} does not forward to this acquirer")
        credential = VaultCard(method.vault, method.token)
    else:
        credential = NetworkToken(
            method.number,
            method.expiry_month,
            method.expiry_year,
            method.scheme,
            method.cryptogram,
            method.eci,
        )
    refused = CONNECTORS[acquirer.kind].adapter.refuses(credential)
    return Ineligible(refused) if refused else credential


def eligibility(
    request: CreatePayment, acquirers: Mapping[str, str], vaults: Mapping[str, VaultSettings]
) -> dict[str, str | None]:
    """Every acquirer (name -> kind): None when the payment can go there,
    else why not."""
    found: dict[str, str | None] = {}
    for name, kind in acquirers.items():
        outcome = usable(request, Where(name, kind), vaults)
        found[name] = outcome.reason if isinstance(outcome, Ineligible) else None
    return found


def summary(method: Method) -> MethodSummary:
    """What the record keeps: never the number, never a whole token."""
    if isinstance(method, AcquirerTokens):
        hints = ", ".join(f"{key}:{token[:4]}…" for key, token in sorted(method.tokens.items()))
        return MethodSummary(type="acquirer_tokens", hint=hints, acquirers=sorted(method.tokens))
    if isinstance(method, VaultToken):
        return MethodSummary(type="vault", hint=f"{method.vault}:{method.token[:6]}…")
    return MethodSummary(type="network_token", hint=f"{method.scheme} …{method.number[-4:]}")


def labels(method: Method) -> tuple[str, ...]:
    """What ``routing.rules[].match.payment_method`` globs are matched against."""
    if isinstance(method, AcquirerTokens):
        return tuple(method.tokens.values())
    if isinstance(method, VaultToken):
        return (f"vault:{method.vault}",)
    return (f"network_token:{method.scheme}",)


def numeric_token_keys(acquirer_kinds: Mapping[str, str]) -> frozenset[str]:
    """Token keys whose tokens may be all digits (Adyen's stored payment method
    ids): acquirer names of such kinds, and the kinds themselves."""
    numeric = {kind for kind, c in CONNECTORS.items() if c.numeric_tokens}
    return frozenset(numeric | {name for name, kind in acquirer_kinds.items() if kind in numeric})


def pan_exempt(data: Any, numeric_keys: frozenset[str]) -> Callable[[Path], bool]:
    """The fields of a create body where a long number is expected, not a card
    number: a network token's number, an all-digits acquirer token where that
    acquirer issues them, a scheme transaction id.  Everywhere else a card
    number is still refused."""
    method = data.get("payment_method") if isinstance(data, dict) else None
    kind = method.get("type") if isinstance(method, dict) else None

    def allowed(path: Path) -> bool:
        if path == ("stored_credential", "network_transaction_id"):
            return True
        if kind == "network_token" and path == ("payment_method", "number"):
            return True
        return (
            kind == "acquirer_tokens"
            and len(path) == 3
            and path[:2] == ("payment_method", "tokens")
            and path[2] in numeric_keys
        )

    return allowed
