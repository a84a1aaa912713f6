"""The sandbox acquirer's books: charges, the operations on them, and a ledger
of every money movement, so tests and benchmarks can count double charges.

Operations here are plain functions on :class:`SandboxState`; they return
``(http status, body)`` or raise :class:`Refusal` for a request the
acquirer does not accept.  The HTTP server (``server.py``) adds idempotency
and faults around them.
"""

from __future__ import annotations

import collections
import itertools
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from adapters.sandbox.faults import FaultBook

Answer = tuple[int, dict[str, Any]]


class Refusal(Exception):
    """A request the sandbox refuses (400/404/422); nothing is stored for its key."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Charge:
    id: str
    reference: str
    amount: int
    currency: str
    status: str  # authorized | captured | voided | declined | pending
    capture: bool = True
    captured_amount: int = 0
    refunded_amount: int = 0
    decline_code: str | None = None
    refunds: list[dict[str, Any]] = field(default_factory=list)
    #: what paid: token | card | network_token, and a hint (never a card number)
    method: str = "token"
    method_hint: str = ""
    network_transaction_id: str | None = None
    return_url: str | None = None

    def view(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("refunds")
        return data


@dataclass
class Stored:
    """What the sandbox answered under one idempotency key."""

    fingerprint: str
    status: int = 0
    body: bytes = b""
    done: bool = False


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def text(self) -> str:
        head = "\n".join(f"{k}: {v}" for k, v in self.headers)
        return f"{self.method} {self.path}\n{head}\n\n{self.body.decode('utf-8', 'replace')}"


@dataclass
class SandboxState:
    name: str
    api_key: str | None = None
    charges: dict[str, Charge] = field(default_factory=dict)
    keys: dict[str, Stored] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    faults: FaultBook = field(default_factory=FaultBook)
    requests_seen: int = 0
    last_request_id: str | None = None
    #: every request as it arrived (method, path with query, headers, body): what
    #: an acquirer would see, so tests can prove nothing leaked to it
    wire: collections.deque[Received] = field(
        default_factory=lambda: collections.deque(maxlen=2000)
    )
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def record(self, kind: str, charge: Charge, amount: int, key: str) -> None:
        self.ledger.append(
            {
                "seq": next(self._seq),
                "kind": kind,
                "charge_id": charge.id,
                "reference": charge.reference,
                "amount": amount,
                "currency": charge.currency,
                "idempotency_key": key,
                "at": time.time(),
            }
        )

    def charge(self, charge_id: str) -> Charge:
        found = self.charges.get(charge_id)
        if found is None:
            raise Refusal(404, "no_such_charge", f"charge {charge_id} does not exist")
        return found


def int_field(data: dict[str, Any], name: str, minimum: int = 1) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise Refusal(400, "invalid_request", f"{name} must be an integer >= {minimum}")
    return value


def _declined(charge: Charge, code: str, **extra: Any) -> Answer:
    return 402, {"status": "declined", "decline_code": code, "charge_id": charge.id, **extra}


def _approve(state: SandboxState, charge: Charge, key: str) -> None:
    charge.network_transaction_id = "ntid" + secrets.token_hex(8)  # the scheme's id
    if charge.capture:
        charge.status, charge.captured_amount = "captured", charge.amount
        state.record("sale", charge, charge.amount, key)
    else:
        charge.status = "authorized"
        state.record("authorization", charge, charge.amount, key)


#: test cards (forwarded by a vault): number -> what happens
TEST_CARDS: dict[str, str] = {
    "4242424242424242": "approve",
    "5555555555554444": "approve",
    "4000000000000002": "do_not_honor",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000003220": "three_d_secure",
}


@dataclass(frozen=True)
class Method:
    kind: str  # token | card | network_token
    value: str  # the token, or the card / network token number
    cryptogram: str | None = None


def _method(data: dict[str, Any]) -> Method:
    """Exactly one of payment_method (a token), card or network_token."""
    given = [k for k in ("payment_method", "card", "network_token") if k in data]
    if len(given) != 1:
        raise Refusal(400, "invalid_request", "give one of payment_method, card, network_token")
    if given[0] == "payment_method":
        token = data["payment_method"]
        if not isinstance(token, str):
            raise Refusal(400, "invalid_request", "payment_method must be a token")
        return Method("token", token)
    fields = data[given[0]]
    number = fields.get("number") if isinstance(fields, dict) else None
    if not isinstance(number, str) or not number.isdigit() or not 13 <= len(number) <= 19:
        raise Refusal(400, "invalid_card", f"{given[0]}.number must be 13-19 digits")
    if given[0] == "network_token":
        return Method("network_token", number, fields.get("cryptogram") or None)
    return Method("card", number)


def _merchant_initiated(data: dict[str, Any]) -> tuple[bool, str | None]:
    stored = data.get("stored_credential")
    if not isinstance(stored, dict):
        return False, None
    ntid = stored.get("network_transaction_id")
    return stored.get("initiator") == "merchant", ntid if isinstance(ntid, str) else None


def _outcome(method: Method, data: dict[str, Any]) -> str:
    """approve, three_d_secure, or a decline code: what the issuer says."""
    mit, ntid = _merchant_initiated(data)
    if method.kind == "token":
        if method.value.startswith("tok_decline_"):
            return method.value.removeprefix("tok_decline_") or "do_not_honor"
        return "three_d_secure" if method.value == "tok_pending" else "approve"
    if mit and ntid is None:
        return "authentication_required"  # a stored card used by the merchant needs its id
    if method.kind == "network_token":
        return "approve" if method.cryptogram or mit else "authentication_required"
    return TEST_CARDS.get(method.value, "do_not_honor")


def create(
    state: SandboxState, data: dict[str, Any], key: str, decline: str | None, url: str = ""
) -> Answer:
    amount = int_field(data, "amount")
    currency = data.get("currency")
    if not isinstance(currency, str):
        raise Refusal(400, "invalid_request", "currency is required")
    method = _method(data)
    return_url = data.get("return_url")
    charge = Charge(
        id="ch_" + secrets.token_hex(10),
        reference=str(data.get("reference") or ""),
        amount=amount,
        currency=currency,
        status="pending",
        capture=bool(data.get("capture", True)),
        method=method.kind,
        method_hint=method.value[:8] if method.kind == "token" else method.value[-4:],
        return_url=return_url if isinstance(return_url, str) else None,
    )
    state.charges[charge.id] = charge
    outcome = decline or _outcome(method, data)
    if outcome == "three_d_secure":
        state.record("pending", charge, amount, key)
        return 201, charge.view() | {"redirect_url": f"{url}/3ds/{charge.id}"}
    if outcome != "approve":
        charge.status, charge.decline_code = "declined", outcome
        return 201, charge.view()
    _approve(state, charge, key)
    return 201, charge.view()


def capture(state: SandboxState, charge: Charge, data: dict[str, Any], key: str) -> Answer:
    amount = int_field(data, "amount") if "amount" in data else charge.amount
    if charge.status != "authorized":
        return _declined(charge, "invalid_state", charge_status=charge.status)
    if amount > charge.amount:
        return _declined(charge, "amount_exceeds_authorization")
    charge.status = "captured"
    charge.captured_amount = amount
    state.record("capture", charge, amount, key)
    return 200, charge.view()


def void(state: SandboxState, charge: Charge, key: str) -> Answer:
    if charge.status != "authorized":
        return _declined(charge, "invalid_state", charge_status=charge.status)
    charge.status = "voided"
    state.record("void", charge, charge.amount, key)
    return 200, charge.view()


def refund(state: SandboxState, charge: Charge, data: dict[str, Any], key: str) -> Answer:
    amount = int_field(data, "amount")
    if charge.status != "captured":
        return _declined(charge, "invalid_state", charge_status=charge.status)
    if charge.refunded_amount + amount > charge.captured_amount:
        return _declined(charge, "amount_exceeds_captured")
    charge.refunded_amount += amount
    record = {
        "id": "re_" + secrets.token_hex(10),
        "charge_id": charge.id,
        "amount": amount,
        "currency": charge.currency,
        "status": "succeeded",
        "reference": str(data.get("reference") or ""),
        "reason": data.get("reason"),
        "merchant_reference": data.get("merchant_reference"),
    }
    charge.refunds.append(record)
    state.record("refund", charge, amount, key)
    return 201, record


def cancel_pending(state: SandboxState, charge: Charge) -> Answer:
    """The merchant gives up on a payment the shopper never authenticated."""
    if charge.status != "pending":
        return _declined(charge, "invalid_state", charge_status=charge.status)
    charge.status, charge.decline_code = "declined", "authentication_expired"
    return 200, charge.view()


def settle_pending(state: SandboxState, charge: Charge, approve: bool, code: str) -> Answer:
    """The shopper finished (or abandoned) 3-D Secure: a pending charge becomes final."""
    if charge.status != "pending":
        raise Refusal(409, "not_pending", f"charge is {charge.status}")
    if approve:
        _approve(state, charge, "settle")
    else:
        charge.status, charge.decline_code = "declined", code
    return 200, charge.view()


def dispatch(
    state: SandboxState,
    op: str,
    data: dict[str, Any],
    key: str,
    charge_id: str | None,
    decline: str | None,
    url: str = "",
) -> Answer:
    """``url``: where the sandbox listens (its 3-D Secure page is there)."""
    if op == "create":
        return create(state, data, key, decline, url)
    charge = state.charge(charge_id or "")
    if op == "capture":
        return capture(state, charge, data, key)
    if op == "void":
        return void(state, charge, key)
    if op == "cancel":
        return cancel_pending(state, charge)
    return refund(state, charge, data, key)
