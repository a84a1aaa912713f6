"""Real redis-server processes for tests: started on free loopback ports,
killable and restartable, always stopped by the fixture that made them."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.procs.net import free_port, wait_port
from tests.procs.proxy import StallingProxy

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def cli(port: int, *args: str) -> str:
    assert REDIS_CLI is not None
    out = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout


@dataclass(frozen=True)
class TlsListener:
    """A redis-server's TLS port, with a certificate for 127.0.0.1 from ``ca``."""

    port: int
    ca_file: Path
    args: tuple[str, ...]

    @property
    def url(self) -> str:
        """rediss://, verifying the server against the CA."""
        return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"


def tls_listener(workdir: Path, ca: trustme.CA) -> TlsListener:
    """Write the CA and a server certificate into ``workdir``; the
    redis-server arguments that listen for TLS with them on a free port."""
    ca_file, cert, key = workdir / "ca.pem", workdir / "cert.pem", workdir / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    port = free_port()
    args = (
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(ca_file),
        "--tls-auth-clients",
        "no",
    )
    return TlsListener(port, ca_file, args)


class RedisProcess:
    """One redis-server.  ``durable`` turns on AOF with fsync always, as
    production must run it: a restart then keeps every acknowledged write.
    ``tls``: a CA, which signs the server a certificate for 127.0.0.1; the
    server then also listens for TLS (``tls_url``; the plain port stays for
    the tests' own commands)."""

    def __init__(
        self,
        workdir: Path,
        *,
        durable: bool = True,
        extra: tuple[str, ...] = (),
        tls: trustme.CA | None = None,
    ) -> None:
        assert REDIS_SERVER is not None, "redis-server is not installed"
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(with_cluster_bus="--cluster-enabled" in extra)
        self.durable = durable
        self.tls = tls_listener(workdir, tls) if tls is not None else None
        self.extra = extra + (self.tls.args if self.tls is not None else ())
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        assert self.tls is not None, "started without tls"
        return self.tls.url

    @property
    def ca_file(self) -> Path:
        assert self.tls is not None, "started without tls"
        return self.tls.ca_file

    def start(self) -> None:
        assert REDIS_SERVER is not None
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        args += list(self.extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        deadline = time.monotonic() + 10
        while "loading:0" not in cli(self.port, "INFO", "persistence"):
            if time.monotonic() > deadline:
                raise RuntimeError("redis did not finish loading")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; only what AOF already holds survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: alive but silent, as a process stuck in a long GC or swap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.kill()


class RedisCluster:
    """``size`` masters, each with ``replicas`` replicas, formed with
    redis-cli --cluster create.  ``durable``: AOF with fsync always on every
    node (the benchmarks compare it with one durable server; most tests
    need no durability of it)."""

    def __init__(
        self, workdir: Path, size: int = 3, *, durable: bool = False, replicas: int = 0
    ) -> None:
        self.replicas = replicas
        self.nodes = [
            RedisProcess(
                workdir / f"node{i}",
                durable=durable,
                extra=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ),
            )
            for i in range(size * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        cli(
            self.nodes[0].port,
            "--cluster",
            "create",
            *(f"127.0.0.1:{n.port}" for n in self.nodes),
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
        )
        self._until(lambda: all(self._ok(n) for n in self.nodes), "reach state ok")
        if self.replicas:
            self._until(lambda: all(self._linked(n) for n in self.nodes), "link every replica")

    @staticmethod
    def _until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster did not {what}")
            time.sleep(0.1)

    @staticmethod
    def _ok(node: RedisProcess) -> bool:
        return node.proc is not None and "cluster_state:ok" in cli(node.port, "CLUSTER", "INFO")

    @staticmethod
    def _linked(node: RedisProcess, *, replica: bool = False) -> bool:
        """A primary (unless ``replica``), or a replica whose link is up."""
        info = cli(node.port, "INFO", "replication")
        return (not replica and "role:master" in info) or "master_link_status:up" in info

    def owner_of_slot(self, slot: int, asked: RedisProcess) -> int:
        """The port of the primary that ``asked`` says serves ``slot``."""
        for line in cli(asked.port, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise LookupError(f"nobody serves slot {slot}")

    def fail_over(self, slot: int = 0) -> None:
        """SIGKILL the primary serving ``slot``; once one of its replicas
        serves it and the cluster is ok again, bring it back, as an operator
        would: it rejoins as a replica of the one promoted."""
        assert self.replicas, "a failover needs replicas"
        old = next(n for n in self.nodes if n.port == self.owner_of_slot(slot, self.nodes[0]))
        witness = next(n for n in self.nodes if n is not old)
        old.kill()

        def promoted() -> bool:
            try:
                return self.owner_of_slot(slot, witness) != old.port and self._ok(witness)
            except LookupError:  # flagged failed, not yet replaced
                return False

        self._until(promoted, "promote a replica")
        old.start()
        self._until(
            lambda: self._linked(old, replica=True) and self._ok(old), "take the old primary back"
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinel:
    """A master plus one sentinel monitoring it as service ``payrouter``."""

    SERVICE = "payrouter"

    def __init__(self, workdir: Path) -> None:
        self.master = RedisProcess(workdir / "master", durable=True)
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.SERVICE}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.master.start()
        conf = self.workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\n"
            f"dir {self.workdir}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 2000\n"
        )
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.master.stop()


class ReplicatedRedis:
    """A primary, one replica reaching it through a stalling proxy, and three
    sentinels (quorum 2) watching them as service ``payrouter``: the
    production shape, with replication lag on demand.

    ``extra`` goes to both Redis servers (``--min-replicas-to-write 1``, say).
    """

    SERVICE = "payrouter"

    def __init__(self, workdir: Path, extra: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        extra = ("--repl-diskless-sync-delay", "0", *extra)
        self.primary = RedisProcess(workdir / "primary", durable=True, extra=extra)
        self.replica: RedisProcess | None = None
        self.extra = extra
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.proxy: StallingProxy | None = None

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    async def start(self) -> None:
        assert REDIS_SERVER is not None
        await asyncio.to_thread(self.primary.start)
        self.proxy = StallingProxy(self.primary.port)
        await self.proxy.start()
        self.replica = RedisProcess(
            self.workdir / "replica",
            durable=True,
            extra=(*self.extra, "--replicaof", "127.0.0.1", str(self.proxy.port)),
        )
        await asyncio.to_thread(self.replica.start)
        await self._until(
            lambda: "master_link_status:up" in self._info(self.replica, "replication")
        )
        await asyncio.to_thread(self._start_sentinels)
        await self._until(lambda: self._sentinels_know_the_replica())

    def _start_sentinels(self) -> None:
        assert REDIS_SERVER is not None
        for index, port in enumerate(self.sentinel_ports):
            conf = self.workdir / f"sentinel-{index}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.workdir}\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                f"sentinel failover-timeout {self.SERVICE} 4000\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    [REDIS_SERVER, str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_port(port)

    @staticmethod
    def _info(server: RedisProcess | None, section: str) -> str:
        if server is None or server.proc is None:
            return ""
        try:
            return cli(server.port, "INFO", section)
        except subprocess.SubprocessError:
            return ""

    def _sentinels_know_the_replica(self) -> bool:
        assert self.replica is not None
        replicas = cli(self.sentinel_ports[0], "SENTINEL", "REPLICAS", self.SERVICE)
        return str(self.replica.port) in replicas

    @staticmethod
    async def _until(condition: Callable[[], bool], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError("the replicated Redis did not settle")
            await asyncio.sleep(0.05)

    def through_proxy(self) -> bool:
        """Whether the replica's link to the primary still goes through the proxy."""
        assert self.proxy is not None
        lines = {line.strip() for line in self._info(self.replica, "replication").splitlines()}
        return {f"master_port:{self.proxy.port}", "master_link_status:up"} <= lines

    def stall_replication(self) -> None:
        """Stall the replica's link to the primary: writes reach the primary,
        not the replica.

        Only for a while after start.  The sentinels see that the replica's
        master address (the proxy's) is not the primary's and, about
        ``failover-timeout`` later (10 s after start here), point the replica
        at the primary itself (Sentinel's ``+fix-slave-config``), after which
        stalling the proxy would hold nothing back, and a test of a lagging
        replica would pass without one.  Pointing it back does not last: each
        of the three sentinels fixes it on its own schedule.  So a stall that
        comes too late is refused, loudly."""
        assert self.proxy is not None
        assert self.proxy.upstream_port == self.primary.port, "after a failover it leads nowhere"
        if not self.through_proxy():
            raise AssertionError(
                "the sentinels have pointed the replica at the primary itself: stalling the "
                "proxy would hold nothing back (stall within 10 s of start)"
            )
        self.proxy.stall()

    def primary_port(self) -> int:
        """Where the sentinels say the primary is now."""
        out = cli(self.sentinel_ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE)
        return int(out.split()[1])

    def _answered_every_sentinel_since(self, port: int, since: float) -> bool:
        """Every sentinel takes ``port`` for the primary and has had a PONG
        from it since ``since`` (``time.monotonic()``).  Promoting a replica
        kills every client connection to it, the sentinels' own among them,
        and with ``down-after-milliseconds`` at 1 s a sentinel can find the new
        primary down before it has reconnected; if the old primary is back
        by then, the sentinels fail over again, to it (10 of 37 runs with
        writes going on, before this wait; none of 22 since)."""
        for sentinel in self.sentinel_ports:
            lines = cli(sentinel, "SENTINEL", "MASTER", self.SERVICE).splitlines()  # some empty
            seen = dict(zip(lines[::2], lines[1::2], strict=False))
            if (seen.get("port"), seen.get("flags")) != (str(port), "master"):
                return False
            if int(seen.get("last-ok-ping-reply", "1000000")) > 1000 * (time.monotonic() - since):
                return False
        return True

    async def fail_over(self) -> None:
        """Kill the primary; once the sentinels promoted the replica and have
        all heard from it again, bring the old primary back, as an operator
        would: the sentinels make it a replica of the new one (it drops the
        writes the promoted replica never got)."""
        assert self.replica is not None
        await asyncio.to_thread(self.primary.kill)
        new_primary = self.replica
        await self._until(lambda: self.primary_port() == new_primary.port)
        switched = time.monotonic()
        await self._until(lambda: self._answered_every_sentinel_since(new_primary.port, switched))
        await self._until(lambda: "role:master" in self._info(new_primary, "replication"))
        await asyncio.to_thread(self.primary.start)
        self.primary, self.replica = new_primary, self.primary
        await self._until(
            lambda: "master_link_status:up" in self._info(self.replica, "replication")
        )

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        if self.replica is not None:
            self.replica.stop()
        self.primary.stop()

    async def close(self) -> None:
        self.stop()
        if self.proxy is not None:
            await self.proxy.close()
