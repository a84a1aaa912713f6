"""The sandbox acquirer: a real HTTP simulator (server) and its adapter."""

from adapters.connector import Connector, EmbeddedAcquirer
from adapters.sandbox.adapter import SandboxAdapter
from adapters.sandbox.server import SandboxServer
from adapters.sandbox.settings import SandboxSettings
from adapters.settings import AcquirerSettings


def embed(name: str, settings: AcquirerSettings) -> EmbeddedAcquirer:
    assert isinstance(settings, SandboxSettings)
    key = settings.api_key.get() if settings.api_key else None
    return SandboxServer(name, api_key=key, faults=settings.faults)


CONNECTOR = Connector(kind="sandbox", settings=SandboxSettings, adapter=SandboxAdapter, embed=embed)
