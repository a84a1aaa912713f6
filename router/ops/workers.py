"""``payrouter serve --workers N``: N processes on one port (SO_REUSEPORT).

The kernel spreads connections over the workers; they share nothing but
Redis, which is exactly what the idempotency journal is built for.  The
parent only supervises: it forwards SIGTERM/SIGINT (stop) and SIGHUP (reload)
to every worker and exits when they have all stopped, with 0 only when every
worker stopped cleanly.  A worker that dies is started again, so one crash
does not halve the capacity.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

from router.config import Config
from router.telemetry import logs
from router.telemetry.metrics import MULTIPROCESS_DIR

log = logging.getLogger(__name__)

#: a worker's exit status for a start-up error no restart fixes (a busy port):
#: the supervisor stops the others and exits with it
EXIT_CANNOT_START = 3


def check_shareable(config: Config) -> list[str]:
    """Why this config cannot run in several processes (empty: it can)."""
    problems = []
    if config.store.kind != "redis":
        problems.append("store.kind must be redis: workers share nothing else")
    if any(a.embedded for a in config.acquirers.values()):
        problems.append("embedded sandbox acquirers would exist once per worker")
    return problems


class Supervisor:
    """Starts the workers, forwards signals to them, restarts one that dies."""

    def __init__(self, command: list[str], workers: int) -> None:
        """``command``: how one worker is started (:func:`worker_command`)."""
        self.args = command
        #: the workers' metric files, aggregated by whichever worker is scraped
        self.metrics_dir = tempfile.mkdtemp(prefix="payrouter-metrics-")
        self.procs = [self._spawn(index + 1) for index in range(workers)]
        self.stopping = False
        self.failed = False

    def _spawn(self, worker: int) -> subprocess.Popen[bytes]:
        """``worker``: its number (1..N), in its log lines as ``worker``."""
        env = {
            **os.environ,
            logs.WORKER_ENV: str(worker),
            MULTIPROCESS_DIR: self.metrics_dir,
        }
        return subprocess.Popen(self.args, env=env)

    def forward(self, signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    def _restart_the_dead(self) -> None:
        for index, proc in enumerate(self.procs):
            code = proc.poll()
            if code is None or self.stopping:
                continue
            if code == EXIT_CANNOT_START:  # a restart would fail the same way
                self.failed = True
                self.forward(signal.SIGTERM, None)
                return
            log.warning("worker %d exited with %s; starting another", proc.pid, code)
            # its live gauges go (prometheus-client leaves this one untyped)
            mark_process_dead(proc.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            self.procs[index] = self._spawn(index + 1)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.forward)
        while not (self.stopping and all(p.poll() is not None for p in self.procs)):
            self._restart_the_dead()
            time.sleep(0.2)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        if self.failed:
            return EXIT_CANNOT_START
        unclean = {p.pid: p.returncode for p in self.procs if p.returncode != 0}
        if unclean:  # the stop reached a worker that did not stop cleanly: say so
            log.error("workers that did not stop cleanly (pid: exit status): %s", unclean)
            return 1
        return 0


def worker_command(config_path: Path, host: str, port: int) -> list[str]:
    return [
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


def supervise(config_path: Path, workers: int, host: str, port: int) -> int:
    return Supervisor(worker_command(config_path, host, port), workers).run()
