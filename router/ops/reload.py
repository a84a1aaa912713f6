"""Live config reload: SIGHUP, a change of the file, or an admin call.

The new file is validated completely, then a new Runtime is built and swapped
in with one assignment.  Requests already running keep the Runtime they
started with; a config that does not validate is refused with its reasons and
the running one stays.  Some sections bind sockets or processes at start-up
(server, store, embedded sandboxes); changing them needs a restart, and a
reload that tries is refused saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from router.config import Config, ConfigError, load_config
from router.runtime import Runtime, RuntimeHolder

#: builds the Runtime of a new config from the current one (kept state carries over)
Builder = Callable[[Config, Runtime], Runtime]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    version: str
    changed: bool
    error: str | None = None


def restart_only_changes(old: Config, new: Config) -> list[str]:
    problems = []
    if old.server != new.server:
        problems.append("server: listener settings change only with a restart")
    if old.store != new.store:
        problems.append("store: the store changes only with a restart")
    embedded_old = {n: a for n, a in old.acquirers.items() if a.embedded}
    embedded_new = {n: a for n, a in new.acquirers.items() if a.embedded}
    if embedded_old != embedded_new:
        problems.append("acquirers: embedded sandboxes change only with a restart")
    return problems


class ConfigReloader:
    def __init__(self, path: str, holder: RuntimeHolder, build: Builder) -> None:
        self.path = path
        self.holder = holder
        self._build = build
        self._lock = asyncio.Lock()
        self.last_error: str | None = None

    async def reload(self, trigger: str) -> ReloadResult:
        async with self._lock:
            current = self.holder.current
            try:
                config = load_config(self.path)
            except ConfigError as exc:
                return self._refuse(current.version, exc.report(), trigger)
            problems = restart_only_changes(current.config, config)
            if problems:
                return self._refuse(current.version, "; ".join(problems), trigger)
            runtime = self._build(config, current)
            if runtime.version == current.version:
                return ReloadResult(True, current.version, changed=False)
            self.holder.swap(runtime)
            self.last_error = None
            log.info(
                "config reloaded (%s): version %s -> %s", trigger, current.version, runtime.version
            )
            return ReloadResult(True, runtime.version, changed=True)

    def _refuse(self, version: str, error: str, trigger: str) -> ReloadResult:
        self.last_error = error
        log.error("config reload (%s) refused, keeping version %s: %s", trigger, version, error)
        return ReloadResult(False, version, changed=False, error=error)


def _stamp(path: str) -> tuple[float, int] | None:
    try:
        info = Path(path).stat()
    except OSError:
        return None
    return info.st_mtime, info.st_size


async def _watch(reloader: ConfigReloader, every_s: float) -> None:
    seen = _stamp(reloader.path)
    while True:
        await asyncio.sleep(every_s)
        stamp = _stamp(reloader.path)
        if stamp is not None and stamp != seen:
            seen = stamp
            await reloader.reload("file change")


@contextlib.asynccontextmanager
async def reloading(reloader: ConfigReloader, watch_every_s: float) -> AsyncIterator[None]:
    """SIGHUP and (when ``watch_every_s`` > 0) file changes trigger reloads."""
    tasks: set[asyncio.Task[ReloadResult]] = set()
    loop = asyncio.get_running_loop()

    def on_sighup() -> None:
        task = loop.create_task(reloader.reload("SIGHUP"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    watcher = asyncio.create_task(_watch(reloader, watch_every_s)) if watch_every_s > 0 else None
    try:
        yield
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
