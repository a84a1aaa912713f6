"""Every web.AppKey of the router application, in one place.

The value types are imported for the type checker only: this module is
imported by handlers and by the app factory alike, and importing the
classes it names at run time would tie them all into one import knot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from adapters.connector import EmbeddedAcquirer
    from router.config import Config
    from router.ledger.drainer import DrainStatus
    from router.ops.background import Loops
    from router.ops.fleet import Member
    from router.ops.reconciler import Share
    from router.ops.reload import ConfigReloader
    from router.runtime import RuntimeHolder
    from router.telemetry.metrics import Metrics
    from router.telemetry.tracing import Tracing
    from router.webhooks.queue import DeliveryQueue

CONFIG: web.AppKey[Config] = web.AppKey("config")
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
EMBEDDED: web.AppKey[dict[str, EmbeddedAcquirer]] = web.AppKey("embedded_acquirers")
RUNTIME: web.AppKey[RuntimeHolder] = web.AppKey("runtime")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
CONFIG_PATH = web.AppKey("config_path", str)
RELOADER: web.AppKey[ConfigReloader] = web.AppKey("config_reloader")
LOOPS: web.AppKey[Loops] = web.AppKey("background_loops")
DELIVERIES: web.AppKey[DeliveryQueue] = web.AppKey("webhook_deliveries")
DRAIN: web.AppKey[DrainStatus] = web.AppKey("ledger_drain")
TRACING: web.AppKey[Tracing] = web.AppKey("tracing")
FLEET: web.AppKey[Member] = web.AppKey("fleet_member")
#: the shards this worker sweeps and trims (the reconciler keeps it current)
SHARE: web.AppKey[Share] = web.AppKey("fleet_share")


@dataclass
class Lifecycle:
    """Where this process is in its life: ``draining`` once it was told to stop."""

    draining: bool = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
