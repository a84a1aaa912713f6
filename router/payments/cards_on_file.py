"""Card on file: the scheme facts a stored-card payment carries.

The first payment with a card (customer-initiated) gets a network
transaction id from the scheme, which the acquirer passes back and the
record keeps.  A later merchant-initiated payment sends that id, so the
issuer links it to the shopper's consent, and since the id is the scheme's,
not the acquirer's, the later payment can go through any acquirer.  The
caller gives the id, or the first payment's id and the router looks it up.
"""

from __future__ import annotations

from adapters.credentials import Initiator, Sequence, StoredCredential, Usage
from router.payments.context import Call
from router.payments.models import CreatePayment
from router.payments.reads import load_payment
from router.problems import Problem


async def stored_credential_of(call: Call, request: CreatePayment) -> StoredCredential | None:
    given = request.stored_credential
    if given is None:
        return None
    if given.initiator == "merchant" and given.usage == "first":
        raise Problem(
            422, "stored_credential_incoherent", "a merchant-initiated payment uses a stored card"
        )
    if given.network_transaction_id and given.initial_payment_id:
        raise Problem(
            422,
            "stored_credential_incoherent",
            "give stored_credential.network_transaction_id or initial_payment_id, not both",
        )
    ntid = given.network_transaction_id
    if given.initial_payment_id is not None:
        first = await load_payment(call.rt, given.initial_payment_id, restore=False)
        if first is None or first.tenant != call.tenant:
            raise Problem(
                404,
                "initial_payment_not_found",
                "stored_credential.initial_payment_id names no payment of this caller",
            )
        if first.network_transaction_id is None:
            raise Problem(
                422,
                "network_transaction_id_unknown",
                "the initial payment's acquirer returned no network transaction id; give "
                "stored_credential.network_transaction_id",
            )
        ntid = first.network_transaction_id
    return StoredCredential(
        initiator=Initiator(given.initiator),
        usage=Usage(given.usage),
        sequence=Sequence(given.sequence) if given.sequence else None,
        network_transaction_id=ntid,
    )
