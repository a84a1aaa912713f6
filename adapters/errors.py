"""The outcome taxonomy of transport trouble, every acquirer mapped into it::

    AcquirerError                 trouble talking to an acquirer (never a decline)
    ├── NotProcessed              provably nothing happened: another acquirer may be tried
    │   ├── BreakerOpen           our circuit breaker refused the call before it started
    │   └── DeadlineExhausted     the request deadline ran out before the call started
    ├── OutcomeUnknown            bytes left this process and no trustworthy answer came
    │                             back: the request may have moved money, never fail over
    └── IntegrationError          our side is wrong (credentials, encoding): needs a human

    CredentialRefused             not trouble but an answer: this acquirer (or the vault
                                  forwarding to it) does not know the payment's credential;
                                  Adapter.create turns it into an invalid_credential decline

Foreign exceptions (aiohttp, asyncio) become these at one boundary,
:func:`adapters.transport.transport_boundary`, which every HTTP call of every
adapter goes through; adapters never catch aiohttp errors themselves.  The
router's request deadline (``router.routing.acquirers.invoke``) is the other
edge of a call: a deadline that fires while the call runs may have cut off a
request the acquirer acted on, so it too is an ``OutcomeUnknown``.
"""

from __future__ import annotations


class AcquirerError(Exception):
    """Base of transport-level trouble; ``reason`` is a stable machine code."""

    def __init__(
        self, acquirer: str, reason: str, detail: str = "", *, replayable: bool = True
    ) -> None:
        super().__init__(f"{acquirer}: {reason}" + (f" ({detail})" if detail else ""))
        self.acquirer = acquirer
        self.reason = reason
        self.detail = detail
        #: False when the acquirer said a replay under the same key cannot help
        #: (e.g. Stripe-Should-Retry: false); resolution then asks for status only
        self.replayable = replayable


class NotProcessed(AcquirerError):
    """The acquirer provably did not act on the request: safe to try elsewhere."""


class BreakerOpen(NotProcessed):
    """Refused by our own circuit breaker (open, or its one probe is out)."""

    def __init__(self, acquirer: str, reason: str = "breaker_open") -> None:
        super().__init__(acquirer, reason)


class DeadlineExhausted(NotProcessed):
    """The request's deadline ran out before this call could start."""

    def __init__(self, acquirer: str) -> None:
        super().__init__(acquirer, "deadline_exhausted")


class OutcomeUnknown(AcquirerError):
    """The request may have been processed.  Only the same acquirer, asked with
    the same idempotency key, can tell us what happened."""


class IntegrationError(AcquirerError):
    """A defect on our side of the integration; needs a human, not a retry."""


class CredentialRefused(Exception):
    """The token, vault card or network token is unknown or unusable there.
    It says nothing about the acquirer's health (no breaker counts it) and
    another acquirer with its own credential may still take the payment."""

    def __init__(self, acquirer: str, raw: str) -> None:
        super().__init__(f"{acquirer}: credential refused ({raw})")
        self.acquirer, self.raw = acquirer, raw


# ------------------------------------------------------------------------- boundary
