"""The processes a benchmark runs against, all on 127.0.0.1 and all stopped at
the end: redis-server, PostgreSQL, sandbox acquirers, router instances, the
drainer, the baseline proxy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import trustme
import yaml

from router.known_keys import DEMO_API_KEY
from tests.procs.net import free_port, wait_port
from tests.procs.postgres import PostgresProcess
from tests.procs.redis import RedisCluster, ReplicatedRedis, cli, tls_listener

ROOT = Path(__file__).resolve().parents[1]
DEMO_KEY = DEMO_API_KEY
DEMO_KEY_SHA = hashlib.sha256(DEMO_KEY.encode()).hexdigest()
#: every router of one benchmark run derives ids with the same secret
ID_SECRET_ENV = {"PAYROUTER_ID_SECRET": "benchmark-id-secret-0123456789"}
ADMIN_KEY = "benchmark-admin-key-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass(frozen=True)
class RedisUsage:
    cpu_s: float
    commands: int


def redis_usage(port: int) -> RedisUsage:
    """A server's CPU time and commands processed, from INFO: to the
    microsecond, where the process's own CPU times count 10 ms ticks."""
    fields = dict(
        line.split(":", 1) for line in cli(port, "INFO", "cpu", "stats").splitlines() if ":" in line
    )
    cpu = float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"])
    return RedisUsage(cpu, int(fields["total_commands_processed"]))


class Proc:
    """One child process with its CPU time readable (workers included)."""

    def __init__(self, name: str, args: list[str], port: int, log: Path, tree: Path = ROOT) -> None:
        """``tree``: the checkout whose code runs (another one: an A/B of two
        versions of the code, benchmarks/ab.py)."""
        self.name, self.args, self.port, self.log, self.tree = name, args, port, log, tree
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **ID_SECRET_ENV}
        if self.tree != ROOT:  # its packages before the ones this venv was installed from
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(self.tree), env.get("PYTHONPATH")])
            )
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.args, cwd=self.tree, stdout=out, stderr=out, env=env)
        if self.port:  # 0: a process that listens on nothing (the drainer)
            wait_port(self.port)
        return self

    def cpu_seconds(self) -> float:
        if self.popen is None or self.popen.poll() is not None:
            return 0.0
        try:
            proc = psutil.Process(self.popen.pid)
            total: float = sum(proc.cpu_times()[:2])
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

    def pin(self, cpus: set[int]) -> None:
        """Run on these CPUs only (children too: a router's workers)."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(self.popen.pid)
            for one in (proc, *proc.children(recursive=True)):
                one.cpu_affinity(sorted(cpus))

    def pause(self) -> None:
        """SIGSTOP: alive and silent (a long GC pause, a frozen VM), children too."""
        self._signal_tree(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_tree(signal.SIGCONT)

    def _signal_tree(self, signum: int) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.popen.pid).children(recursive=True):
                child.send_signal(signum)
        self.popen.send_signal(signum)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGCONT)  # a paused process cannot hear SIGTERM
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


#: the CPUs this process started with: pinning moves it, the split must not move
STARTED_ON = frozenset(os.sched_getaffinity(0))


def cpu_split() -> tuple[set[int], set[int]] | None:
    """(hot, rest): the last CPU for the process under measurement, the others
    for everything that feeds or serves it; None with a single CPU."""
    cpus = sorted(STARTED_ON)
    return ({cpus[-1]}, set(cpus[:-1])) if len(cpus) > 1 else None


class Stack:
    def __init__(self, workdir: Path) -> None:
        self._affinity = os.sched_getaffinity(0)  # put back by close()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.redis: Proc | None = None
        #: the single server's TLS address, when it was started with TLS
        self.redis_tls_url: str | None = None
        #: primary + replica + sentinels, for the failover scenarios
        self.replicated: ReplicatedRedis | None = None
        self.sandboxes: dict[str, Proc] = {}
        #: the system of record, for the scenarios that keep one
        self.postgres: PostgresProcess | None = None
        #: a Redis Cluster, for the scenario that compares it with one server
        self.cluster: RedisCluster | None = None

    def _py(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    def start_redis(self, *, tls: bool = False) -> Proc:
        """``tls``: the server also listens for TLS, with a certificate from a
        CA of the run's own, and routers configured after this use it (INFO
        still goes over the plain port)."""
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed")
        port = free_port()
        data = self.workdir / "redis"
        shutil.rmtree(data, ignore_errors=True)  # every run starts from an empty Redis
        data.mkdir()
        listener = tls_listener(data, trustme.CA()) if tls else None
        self.redis_tls_url = listener.url if listener is not None else None
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
                *(listener.args if listener is not None else ()),
            ],
            port,
            self.workdir / "redis.log",
        ).start()
        self.procs.append(self.redis)
        return self.redis

    async def stop_replicated_redis(self) -> None:
        if self.replicated is not None:
            await self.replicated.close()
            self.replicated = None

    async def start_replicated_redis(self) -> ReplicatedRedis:
        data = self.workdir / "replicated"
        shutil.rmtree(data, ignore_errors=True)
        self.replicated = ReplicatedRedis(data)
        await self.replicated.start()
        return self.replicated

    def start_cluster(self, size: int, replicas: int = 0) -> RedisCluster:
        """Durable nodes, like the single server; routers configured after this use it."""
        data = self.workdir / "cluster"
        shutil.rmtree(data, ignore_errors=True)
        self.cluster = RedisCluster(data, size, durable=True, replicas=replicas)
        self.cluster.start()
        return self.cluster

    def redis_usage(self) -> list[RedisUsage]:
        """What each Redis server of the stack's current store (the Cluster's
        nodes, else the primary and its replica, else the single server) has
        spent so far, as it counts it."""
        if self.cluster is not None:
            return [redis_usage(node.port) for node in self.cluster.nodes]
        if self.replicated is not None:
            assert self.replicated.replica is not None
            return [
                redis_usage(self.replicated.primary.port),
                redis_usage(self.replicated.replica.port),
            ]
        assert self.redis is not None
        return [redis_usage(self.redis.port)]

    @property
    def redis_url(self) -> str:
        if self.cluster is not None:
            return self.cluster.url
        if self.replicated is not None:
            return self.replicated.url
        assert self.redis is not None
        return self.redis_tls_url or f"redis://127.0.0.1:{self.redis.port}/0"

    @contextlib.contextmanager
    def redis_fsync(self, policy: str) -> Iterator[None]:
        """The single server's AOF fsync policy set to ``policy`` for a while
        (``always`` is the production setting: a write is on disk before it
        is acknowledged), then put back."""
        assert self.redis is not None
        before = cli(self.redis.port, "CONFIG", "GET", "appendfsync").split()[-1]
        cli(self.redis.port, "CONFIG", "SET", "appendfsync", policy)
        try:
            yield
        finally:
            cli(self.redis.port, "CONFIG", "SET", "appendfsync", before)

    def restart_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.start()

    async def start_postgres(self) -> PostgresProcess:
        from router.ledger.postgres.migrate import migrate_url

        data = self.workdir / "postgres"
        shutil.rmtree(data, ignore_errors=True)
        self.postgres = PostgresProcess(data)
        await asyncio.to_thread(self.postgres.start)
        await migrate_url(self.postgres.url)
        return self.postgres

    def pin_all(self, hot: list[Proc], hot_cpus: set[int], rest_cpus: set[int]) -> None:
        """``hot`` on ``hot_cpus``; every other process of the stack, PostgreSQL
        and this process (the load generator) on ``rest_cpus``."""
        for proc in self.procs:
            proc.pin(hot_cpus if proc in hot else rest_cpus)
        if self.postgres is not None and self.postgres.proc is not None:
            with contextlib.suppress(psutil.Error):
                server = psutil.Process(self.postgres.proc.pid)
                for one in (server, *server.children(recursive=True)):
                    one.cpu_affinity(sorted(rest_cpus))
        os.sched_setaffinity(0, rest_cpus)

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

    def router_config(
        self,
        store: dict[str, Any] | None = None,
        payments: dict[str, Any] | None = None,
        ledger: dict[str, Any] | None = None,
        *,
        production: bool = False,
        **routing: Any,
    ) -> Path:
        """``ledger``: the system of record's settings (on this stack's PostgreSQL).
        The chaos scenarios probe health and reconcile every half second, so an
        outage or a crash resolves within the run; ``production`` keeps the
        shipped intervals instead, for the scenarios that measure cost."""
        config: dict[str, Any] = {
            "server": {"watch_config_s": 0},
            "store": {
                "kind": "redis",
                "url": self.redis_url,
                "id_secret": {"env": "PAYROUTER_ID_SECRET"},
                **(store or {}),
            },
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
            "payments": {
                "deadline_s": 4,
                "lease_s": 3,
                "same_acquirer_replays": 2,
                **(payments or {}),
            },
            "reconciler": {"interval_s": 0.5, "first_check_s": 0.5, "not_found_grace_s": 3},
            "admin": {"api_key_sha256": [hashlib.sha256(ADMIN_KEY.encode()).hexdigest()]},
        }
        if production:
            del config["reconciler"]
            for acquirer in config["acquirers"].values():
                del acquirer["health"]
        if ledger is not None:
            assert self.postgres is not None
            config["ledger"] = {"kind": "postgres", "url": self.postgres.url, **ledger}
        path = self.workdir / f"router-{len(self.procs)}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start_router(self, config: Path, workers: int = 1, tree: Path = ROOT) -> Proc:
        port = free_port()
        args = self._py("-m", "router.cli", "serve", "--config", str(config), "--port", str(port))
        if workers > 1:
            args += ["--workers", str(workers)]
        log = self.workdir / f"router-{port}.log"
        proc = Proc(f"router-{port}", args, port, log, tree).start()
        self.procs.append(proc)
        return proc

    def start_drainer(self, config: Path) -> Proc:
        """``payrouter drain``: listens on nothing."""
        args = self._py("-m", "router.cli", "drain", "--config", str(config))
        proc = Proc("drainer", args, 0, self.workdir / f"drainer-{len(self.procs)}.log").start()
        self.procs.append(proc)
        return proc

    def start_baseline(self, client: str = "redis-py") -> Proc:
        assert self.redis is not None
        upstream = next(iter(self.sandboxes.values()))
        port = free_port()
        proc = Proc(
            f"baseline-{client}",
            self._py(
                "-m",
                "benchmarks.baseline",
                "--port",
                str(port),
                "--redis",
                f"redis://127.0.0.1:{self.redis.port}/1",
                "--upstream",
                f"http://127.0.0.1:{upstream.port}",
                "--client",
                client,
            ),
            port,
            self.workdir / f"baseline-{client}.log",
        ).start()
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    async def close(self) -> None:
        os.sched_setaffinity(0, self._affinity)
        for proc in reversed(self.procs):
            await asyncio.to_thread(proc.stop)
        self.procs.clear()
        await self.stop_replicated_redis()
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.stop)


@contextlib.asynccontextmanager
async def stack(workdir: Path) -> AsyncIterator[Stack]:
    running = Stack(workdir)
    try:
        yield running
    finally:
        await running.close()
