"""The processes a benchmark runs against, all on 127.0.0.1 and all stopped at
the end: redis-server, sandbox acquirers, router instances, the baseline proxy."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO_KEY = "sk_test_demo"
DEMO_KEY_SHA = "5d48f1024f38b44ad9ddc03dc12b2a8287c7ec690065dcef384cb1fd1753626d"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Proc:
    """One child process with its CPU time readable (workers included)."""

    def __init__(self, name: str, args: list[str], port: int, log: Path) -> None:
        self.name, self.args, self.port, self.log = name, args, port, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.args,
                cwd=ROOT,
                stdout=out,
                stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        wait_port(self.port)
        return self

    def cpu_seconds(self) -> float:
        if self.popen is None or self.popen.poll() is not None:
            return 0.0
        try:
            proc = psutil.Process(self.popen.pid)
            total = sum(proc.cpu_times()[:2])
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += sum(child.cpu_times()[:2])
            return total
        except psutil.Error:
            return 0.0

    def kill(self) -> None:
        """SIGKILL the process and its children: no shutdown, no goodbye."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.popen.pid).children(recursive=True):
                child.kill()
        self.popen.kill()
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.redis: Proc | None = None
        self.sandboxes: dict[str, Proc] = {}

    def _py(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    def start_redis(self) -> Proc:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed")
        port = free_port()
        data = self.workdir / "redis"
        shutil.rmtree(data, ignore_errors=True)  # every run starts from an empty Redis
        data.mkdir()
        self.redis = Proc(
            "redis",
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "no",
            ],
            port,
            self.workdir / "redis.log",
        ).start()
        self.procs.append(self.redis)
        return self.redis

    def restart_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.start()

    def start_sandbox(self, name: str) -> Proc:
        port = free_port()
        proc = Proc(
            name,
            self._py("-m", "router.cli", "sandbox", "--port", str(port), "--name", name),
            port,
            self.workdir / f"{name}.log",
        ).start()
        self.sandboxes[name] = proc
        self.procs.append(proc)
        return proc

    def router_config(self, **routing: Any) -> Path:
        assert self.redis is not None
        config = {
            "server": {"watch_config_s": 0},
            "store": {"kind": "redis", "url": f"redis://127.0.0.1:{self.redis.port}/0"},
            "callers": {"demo": {"api_key_sha256": [DEMO_KEY_SHA]}},
            "acquirers": {
                name: {
                    "kind": "sandbox",
                    "base_url": f"http://127.0.0.1:{p.port}",
                    "timeouts": {"connect_s": 0.5, "read_s": 2.0},
                    "health": {"interval_s": 0.5, "timeout_s": 0.5, "rise": 2, "fall": 1},
                }
                for name, p in self.sandboxes.items()
            },
            "routing": {"default": list(self.sandboxes), **routing},
            "payments": {"deadline_s": 4, "lease_s": 3, "same_acquirer_replays": 2},
            "reconciler": {"interval_s": 0.5, "first_check_s": 0.5, "not_found_grace_s": 3},
        }
        path = self.workdir / f"router-{len(self.procs)}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start_router(self, config: Path, workers: int = 1) -> Proc:
        port = free_port()
        args = self._py("-m", "router.cli", "serve", "--config", str(config), "--port", str(port))
        if workers > 1:
            args += ["--workers", str(workers)]
        proc = Proc(f"router-{port}", args, port, self.workdir / f"router-{port}.log").start()
        self.procs.append(proc)
        return proc

    def start_baseline(self) -> Proc:
        assert self.redis is not None
        upstream = next(iter(self.sandboxes.values()))
        port = free_port()
        proc = Proc(
            "baseline",
            self._py(
                "-m",
                "benchmarks.baseline",
                "--port",
                str(port),
                "--redis",
                f"redis://127.0.0.1:{self.redis.port}/1",
                "--upstream",
                f"http://127.0.0.1:{upstream.port}",
            ),
            port,
            self.workdir / "baseline.log",
        ).start()
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


@contextlib.contextmanager
def stack(workdir: Path) -> Iterator[Stack]:
    running = Stack(workdir)
    try:
        yield running
    finally:
        running.close()
