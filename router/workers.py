"""``payrouter serve --workers N``: N processes on one port (SO_REUSEPORT).

The kernel spreads connections over the workers; they share nothing but
Redis, which is exactly what the idempotency journal is built for.  The
parent only supervises: it forwards SIGTERM/SIGINT (stop) and SIGHUP (reload)
to every worker and exits when they have all stopped.  A worker that dies is
started again, so one crash does not halve the capacity.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

from router.config import Config

log = logging.getLogger(__name__)


def check_shareable(config: Config) -> list[str]:
    """Why this config cannot run in several processes (empty: it can)."""
    problems = []
    if config.store.kind != "redis":
        problems.append("store.kind must be redis: workers share nothing else")
    if any(a.embedded for a in config.acquirers.values()):
        problems.append("embedded sandbox acquirers would exist once per worker")
    return problems


def supervise(config_path: Path, workers: int, host: str, port: int) -> int:
    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "router.cli",
                "serve",
                "--config",
                str(config_path),
                "--host",
                host,
                "--port",
                str(port),
                "--worker",
            ]
        )

    procs = [spawn() for _ in range(workers)]
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        for index, proc in enumerate(procs):
            if proc.poll() is not None and not stopping:
                log.warning("worker %d exited with %s; starting another", proc.pid, proc.returncode)
                procs[index] = spawn()
        if stopping and all(p.poll() is not None for p in procs):
            return 0
        time.sleep(0.2)
