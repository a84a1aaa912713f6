"""Every acquirer kind the router knows, in one list.

Adding an acquirer is one new package (``adapters/<kind>/`` exporting a
``CONNECTOR``) plus one entry in ``CONNECTORS``; nothing in the router names
a kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Discriminator

from adapters import adyen, checkout, sandbox, stripe
from adapters.connector import Connector
from adapters.settings import AcquirerSettings

CONNECTORS: dict[str, Connector] = {
    c.kind: c for c in (sandbox.CONNECTOR, stripe.CONNECTOR, adyen.CONNECTOR, checkout.CONNECTOR)
}

if TYPE_CHECKING:
    AnySettings = AcquirerSettings
else:
    #: one pydantic union discriminated on ``kind``: an unknown kind is refused
    #: with the list of the known ones
    AnySettings = Annotated[
        Union[tuple(c.settings for c in CONNECTORS.values())],  # noqa: UP007
        Discriminator("kind"),
    ]


def connector_for(settings: AcquirerSettings) -> Connector:
    return CONNECTORS[settings.kind]
