"""What an adapter is given to charge: a credential, resolved for that acquirer.

The router never holds a card number.  A payment method reaches an adapter as
one of three credentials:

* :class:`AcquirerToken` -- a token this acquirer issued (Stripe ``pm_...``,
  an Adyen stored payment method id, a Checkout.com ``src_...``); usable only
  there, so the router resolves it per acquirer before the adapter sees it;
* :class:`VaultCard` -- a vault alias; the adapter writes its own request and
  the vault's forwarder fills in the card fields on the way out, so the card
  data passes the vault and the acquirer, never payrouter;
* :class:`NetworkToken` -- a scheme token with its cryptogram, accepted by
  every acquirer in its own format.  It is PAN-like and is never logged.

Card-on-file payments carry :class:`StoredCredential`, the scheme facts that
let a merchant-initiated payment go through any acquirer.
"""

from __future__ import annotations

import enum
from dataclasses import field

from adapters.values import frozen


@frozen
class AcquirerToken:
    token: str


@frozen
class VaultCard:
    vault: str
    token: str


@frozen
class NetworkToken:
    number: str = field(repr=False)
    expiry_month: int
    expiry_year: int
    scheme: str
    cryptogram: str | None = field(default=None, repr=False)
    eci: str | None = None

    @property
    def last4(self) -> str:
        return self.number[-4:]


Credential = AcquirerToken | VaultCard | NetworkToken


class Initiator(enum.StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"


class Usage(enum.StrEnum):
    FIRST = "first"
    SUBSEQUENT = "subsequent"


class Sequence(enum.StrEnum):
    RECURRING = "recurring"
    UNSCHEDULED = "unscheduled"
    INSTALLMENT = "installment"


@frozen
class StoredCredential:
    initiator: Initiator
    usage: Usage
    sequence: Sequence | None = None
    #: the scheme's id of the first payment, sent on every later merchant-initiated one
    network_transaction_id: str | None = None

    @property
    def merchant_initiated(self) -> bool:
        return self.initiator is Initiator.MERCHANT
