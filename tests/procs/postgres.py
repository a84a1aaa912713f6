"""Real PostgreSQL servers for tests: a fresh cluster (initdb) in a temporary
folder on a free loopback port, killable and restartable, never the
machine's own server.

PostgreSQL refuses to run as root; when the tests run as root the cluster
belongs to the ``postgres`` system user, and every command runs as it.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.procs.net import free_port, wait_port


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


INITDB = _binary("initdb")
POSTGRES = _binary("postgres")
CREATEDB = _binary("createdb")


class PostgresProcess:
    """One PostgreSQL cluster with a ``payrouter`` database, trust auth on
    127.0.0.1, fsync on (a kill must not lose a committed transaction)."""

    def __init__(self, workdir: Path) -> None:
        missing = [n for n, b in (("initdb", INITDB), ("postgres", POSTGRES)) if b is None]
        assert not missing, f"PostgreSQL server binaries are not installed: {missing}"
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            self._run_as = {"user": user.pw_uid, "group": user.pw_gid}
        workdir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            os.chown(workdir, self._run_as["user"], self._run_as["group"])
            # the folder pytest made may sit under one only root can enter
            for parent in workdir.parents:
                if parent == Path(parent.anchor) or str(parent) in ("/tmp", "/var/tmp"):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o711)

    @property
    def url(self) -> str:
        return self.url_of("payrouter")

    def url_of(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            list(args), check=True, capture_output=True, timeout=120, cwd="/", **self._run_as
        )

    def start(self) -> None:
        assert INITDB is not None
        assert POSTGRES is not None
        if not (self.data / "PG_VERSION").exists():
            self._run(INITDB, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        log = open(self.workdir / "postgres.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [
                POSTGRES,
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.workdir),
                "-c",
                "fsync=on",
                "-c",
                "max_connections=100",
            ],
            stdout=log,
            stderr=log,
            cwd="/",
            **self._run_as,
        )
        log.close()
        wait_port(self.port, 30)
        self._ready()

    def _ready(self) -> None:
        """Accepting connections, with the ``payrouter`` database made."""
        self.create("payrouter")

    def create(self, database: str) -> None:
        assert CREATEDB is not None
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                [CREATEDB, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", database],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode == 0 or "already exists" in done.stderr:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres is not ready: {done.stderr.strip()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no checkpoint; what the WAL holds survives (fsync on)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self._clean_pidfile()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _clean_pidfile(self) -> None:
        pid = self.data / "postmaster.pid"
        if pid.exists():
            pid.unlink()

    def wait_gone(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.proc is not None and self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not stop")
            time.sleep(0.02)


def create_database(server: PostgresProcess) -> str:
    """A new empty database on ``server``; its URL."""
    name = f"t_{secrets.token_hex(6)}"
    server.create(name)
    return server.url_of(name)
