"""Operator actions that hold for the whole fleet: drains and reloads.

An admin call reaches one worker of one instance.  So the call writes the
intent to the store (which acquirers are drained; a reload generation), and
every worker of every instance reads it every ``server.fleet_poll_s`` and
obeys: drained acquirers leave its rotation, a new generation makes it reload
its config file.  Each worker then reports what it applied (config version,
drained acquirers, generation) under its own key, which expires when it
stops reporting, so ``GET /admin/fleet`` shows who has caught up.

The store is the one place for this state because it is the one thing every
instance already shares; a store that does not answer leaves every worker on
the state it last saw (a drain is never undone by an outage).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from router.ops.reload import ConfigReloader
from router.runtime import Runtime
from router.store.protocol import FleetState, StoreUnavailable
from router.telemetry import logs

log = logging.getLogger(__name__)

#: a report lives this many poll intervals: a worker that stops reporting
#: (stopped, hung) leaves the fleet view soon after
REPORT_LIFETIME_POLLS = 6


@dataclass
class Member:
    """This worker, as the fleet knows it."""

    instance: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
    )
    worker: str = logs.WORKER
    #: the reload generation this worker has applied (None: not synced yet)
    generation: int | None = None
    last_state: FleetState = field(default_factory=FleetState)


def apply_drains(rt: Runtime, state: FleetState) -> None:
    for name, acquirer in rt.acquirers.items():
        acquirer.drained = name in state.drained


async def sync(
    member: Member, current: Callable[[], Runtime], reloader: ConfigReloader | None
) -> FleetState:
    """Read the fleet's state once, obey it, report it."""
    rt = current()
    state = await rt.store.fleet_state()
    if member.generation is None:
        member.generation = state.generation  # requests from before we started are done
    elif state.generation > member.generation:
        if reloader is not None:
            result = await reloader.reload("fleet reload request")
            log.info(
                "fleet reload %d: ok=%s version %s", state.generation, result.ok, result.version
            )
        member.generation = state.generation
        rt = current()
    apply_drains(rt, state)
    member.last_state = state
    await report(member, rt)
    return state


async def report(member: Member, rt: Runtime) -> None:
    poll_ms = int(rt.config.server.fleet_poll_s * 1000)
    body = {
        "instance": member.instance,
        "worker": member.worker,
        "pid": os.getpid(),
        "config_version": rt.version,
        "drained": sorted(n for n, a in rt.acquirers.items() if a.drained),
        "generation": member.generation,
        "reported_ms": int(time.time() * 1000),
    }
    ttl_ms = max(2000, REPORT_LIFETIME_POLLS * poll_ms)
    await rt.store.report_instance(member.instance, orjson.dumps(body), ttl_ms)


async def fleet_loop(
    member: Member,
    current: Callable[[], Runtime],
    reloader: Callable[[], ConfigReloader | None],
) -> None:
    while True:
        try:
            await sync(member, current, reloader())
        except StoreUnavailable as exc:
            log.warning("fleet state unreadable (%s); keeping the last one", exc)
        await asyncio.sleep(current().config.server.fleet_poll_s)


async def fleet_view(rt: Runtime, member: Member) -> dict[str, Any]:
    """What ``GET /admin/fleet`` shows."""
    state = await rt.store.fleet_state()
    reports = [orjson.loads(r) for r in await rt.store.fleet_instances()]
    return {
        "drained": sorted(state.drained),
        "generation": state.generation,
        "answered_by": member.instance,
        "instances": sorted(reports, key=lambda r: (r["instance"], r["worker"])),
    }
