"""Every web.AppKey of the router application, in one place."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from adapters.sandbox.server import SandboxServer
from router.config import Config
from router.metrics import Metrics
from router.reload import ConfigReloader
from router.runtime import RuntimeHolder

CONFIG = web.AppKey("config", Config)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
SANDBOXES = web.AppKey("embedded_sandboxes", dict[str, SandboxServer])
RUNTIME = web.AppKey("runtime", RuntimeHolder)
METRICS = web.AppKey("metrics", Metrics)
CONFIG_PATH = web.AppKey("config_path", str)
RELOADER = web.AppKey("config_reloader", ConfigReloader)
