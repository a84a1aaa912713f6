"""Every web.AppKey of the router application, in one place."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from adapters.sandbox.server import SandboxServer
from router.config import Config
from router.runtime import Runtime

CONFIG = web.AppKey("config", Config)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
SANDBOXES = web.AppKey("embedded_sandboxes", dict[str, SandboxServer])
RUNTIME = web.AppKey("runtime", Runtime)
RECONCILER_TASK = web.AppKey("reconciler_task", asyncio.Task[None])
