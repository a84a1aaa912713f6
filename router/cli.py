"""``payrouter``: serve the router, run a sandbox acquirer, check configs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import TypeAdapter, ValidationError

from adapters.sandbox.faults import FaultRule
from adapters.sandbox.server import SandboxServer, keep_books_out_of_the_collector
from router.config import DEMO_CONFIG, ConfigError, load_config
from router.http.app import create_app
from router.http.ops import metrics_app
from router.http.server import CannotListen, Listen, listener_tls, serve
from router.ledger.export import moment, write_csv
from router.ledger.postgres.ledger import PostgresLedger
from router.ledger.postgres.migrate import migrate_url
from router.ledger.protocol import LedgerUnavailable, SchemaNotCurrent
from router.ops.drain import DRAINER_NICENESS, run_drainer
from router.ops.workers import EXIT_CANNOT_START, check_shareable, supervise
from router.payments.records import now_ms
from router.routing.explain import explain, render
from router.store.redis.store import RedisStore
from router.telemetry import logs
from router.webhooks.queue import RedisDeliveryQueue


def _uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional speed-up
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if args.workers > 1:
        problems = check_shareable(config)
        if problems:
            for problem in problems:
                print(f"{args.config}: --workers {args.workers}: {problem}", file=sys.stderr)
            return 2
        print(f"payrouter: {args.workers} workers on {host}:{port}", flush=True)
        return supervise(args.config, args.workers, host, port)
    _uvloop()
    tls = None
    if config.server.tls is not None:
        tls = listener_tls(config.server.tls.cert_file, config.server.tls.key_file)
    scheme = "https" if tls else "http"
    print(f"payrouter listening on {scheme}://{host}:{port}  (config: {args.config})", flush=True)
    app = create_app(config, config_path=str(args.config))
    listen = Listen(host, port, tls, reuse_port=args.worker)
    try:
        asyncio.run(serve(app, config.server, listen, side=metrics_app(app)))
    except CannotListen as exc:
        print(f"payrouter: {exc}", file=sys.stderr, flush=True)
        return EXIT_CANNOT_START
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    faults: list[FaultRule] = []
    if args.faults is not None:
        try:
            faults = TypeAdapter(list[FaultRule]).validate_python(
                yaml.safe_load(args.faults.read_text(encoding="utf-8")) or []
            )
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            print(f"{args.faults}: invalid fault rules: {exc}", file=sys.stderr)
            return 2
    _uvloop()

    async def run() -> None:
        server = SandboxServer(args.name, args.host, args.port, api_key=args.api_key, faults=faults)
        await server.start()
        keep_books_out_of_the_collector()
        print(f"sandbox acquirer {args.name} listening on {server.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await server.close()

    asyncio.run(run())
    return 0


def _validate(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(
        f"{args.file}: OK ({len(config.acquirers)} acquirers, "
        f"{len(config.callers)} callers, store {config.store.kind})"
    )
    return 0


def _explain(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        payment = orjson.loads(args.payment.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"{args.payment}: cannot read a JSON payment: {exc}", file=sys.stderr)
        return 2
    if not isinstance(payment, dict):
        print(f"{args.payment}: the payment must be a JSON object", file=sys.stderr)
        return 2
    plan, table, usable = explain(config, payment)
    if args.json:
        print(
            orjson.dumps(
                {
                    "rule": plan.rule,
                    "balancer": plan.balancer,
                    "candidates": plan.candidates,
                    "notes": plan.notes,
                    "eligibility": usable,
                }
            ).decode()
        )
    else:
        print(render(plan, table, payment, usable))
    return 0


def _redeliver(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.store.kind != "redis":
        print(
            "webhook dead letters live in Redis; this config uses the memory store", file=sys.stderr
        )
        return 2

    async def run() -> int:
        assert config.store.url is not None
        store = RedisStore.from_url(config.store.url, config.store.ttl_s * 1000)
        try:
            outbox = RedisDeliveryQueue(store.client)
            if args.list:
                for entry_id, delivery, reason in await outbox.dead_letters(1000):
                    print(
                        f"{entry_id}  {delivery.event_id}  {delivery.event_type}  "
                        f"-> {delivery.subscriber}  ({reason})"
                    )
                return 0
            moved = await outbox.redeliver(args.ids or None, now_ms())
            print(f"redelivered {moved} dead letter(s)")
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def _postgres_config(path: Path) -> tuple[str, str | None] | None:
    config = load_config(path)
    ledger = config.ledger
    if ledger is None or ledger.kind != "postgres" or ledger.url is None:
        print(f"{path}: ledger.kind must be postgres for this command", file=sys.stderr)
        return None
    return ledger.url, ledger.password.get() if ledger.password else None


def _db_migrate(args: argparse.Namespace) -> int:
    target = _postgres_config(args.config)
    if target is None:
        return 2
    applied = asyncio.run(migrate_url(*target))
    print("applied: " + ", ".join(applied) if applied else "the schema is current")
    return 0


def _ledger_export(args: argparse.Namespace) -> int:
    target = _postgres_config(args.config)
    if target is None:
        return 2
    try:
        from_ms = moment(args.from_)
        to_ms = moment(args.to, end_of_day=True)
    except ValueError:
        print("--from and --to take YYYY-MM-DD or an ISO 8601 time", file=sys.stderr)
        return 2

    async def run() -> int:
        ledger = await PostgresLedger.connect(target[0], password=target[1])
        try:
            await ledger.check_schema()
            if args.output is None:
                return await write_csv(ledger, sys.stdout, from_ms, to_ms, args.acquirer)
            with args.output.open("w", encoding="utf-8", newline="") as out:
                return await write_csv(ledger, out, from_ms, to_ms, args.acquirer)
        finally:
            await ledger.close()

    count = asyncio.run(run())
    print(f"{count} movements", file=sys.stderr)
    return 0


def _drain(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.ledger is None or config.ledger.kind != "postgres" or config.store.kind != "redis":
        print(
            f"{args.config}: an external drainer needs store.kind redis and ledger.kind postgres",
            file=sys.stderr,
        )
        return 2
    _uvloop()
    os.nice(DRAINER_NICENESS)  # background work: where it shares CPUs, routers come first
    asyncio.run(run_drainer(config))
    return 0


#: shown by ``--help``: plain text (argparse prints it as written)
DESCRIPTION = "payrouter: serve the router, run a sandbox acquirer, check configs."


class HelpFormat(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown, except where there is none or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False) or "default" in text:
            return text
        return super()._get_help_string(action)


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows every option's default."""
    made: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=summary, formatter_class=HelpFormat
    )
    return made


def _config_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", type=Path, required=True, help="the router's config file")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="payrouter", description=DESCRIPTION, formatter_class=HelpFormat
    )
    sub = top.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _sandbox_parser(sub)
    _config_parser(sub)

    webhooks = _command(sub, "webhooks", "outbound webhook tools")
    webhooks_sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    redeliver = _command(
        webhooks_sub, "redeliver", "send dead-lettered deliveries again (all, or the ids given)"
    )
    _config_option(redeliver)
    redeliver.add_argument("--list", action="store_true", help="only list the dead letters")
    redeliver.add_argument("ids", nargs="*", help="dead letter ids (none: all of them)")
    redeliver.set_defaults(func=_redeliver)

    db = _command(sub, "db", "the system of record's database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = _command(db_sub, "migrate", "apply the schema migrations that are missing")
    _config_option(migrate)
    migrate.set_defaults(func=_db_migrate)

    _ledger_parser(sub)
    drain = _command(sub, "drain", "run the outbox drainer on its own (ledger.drain: external)")
    _config_option(drain)
    drain.set_defaults(func=_drain)
    health = _command(sub, "health", "exit 0 when a payrouter process answers (container probes)")
    health.add_argument(
        "--url",
        default=os.environ.get("PAYROUTER_HEALTH_URL", DEFAULT_HEALTH_URL),
        help="what to ask (env PAYROUTER_HEALTH_URL)",
    )
    health.set_defaults(func=_health)
    return top


def _serve_parser(sub: Any) -> None:
    serve = _command(sub, "serve", "run the router")
    serve.add_argument(
        "--config", type=Path, default=DEMO_CONFIG, help="config file (default: the embedded demo)"
    )
    serve.add_argument("--host", help="listen address (default: server.host of the config)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port of the config)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port (SO_REUSEPORT); needs the Redis store",
    )
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)


def _sandbox_parser(sub: Any) -> None:
    sandbox = _command(sub, "sandbox", "run a sandbox acquirer")
    sandbox.add_argument("--port", type=int, required=True, help="listen port")
    sandbox.add_argument("--host", default="127.0.0.1", help="listen address")
    sandbox.add_argument("--name", default="sandbox", help="its name in logs and ledgers")
    sandbox.add_argument("--api-key", default=None, help="require this bearer key")
    sandbox.add_argument("--faults", type=Path, help="YAML/JSON list of fault rules")
    sandbox.set_defaults(func=_sandbox)


def _config_parser(sub: Any) -> None:
    config = _command(sub, "config", "configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    validate = _command(config_sub, "validate", "check a config file")
    validate.add_argument("file", type=Path, help="the config file")
    validate.set_defaults(func=_validate)
    explain = _command(
        config_sub, "explain", "which acquirers a sample payment would try, in order, and why"
    )
    explain.add_argument("config", type=Path, help="the config file")
    explain.add_argument("payment", type=Path, help="JSON body of POST /v1/payments (+ caller)")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.set_defaults(func=_explain)


def _ledger_parser(sub: Any) -> None:
    ledger = _command(sub, "ledger", "the system of record")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    export = _command(
        ledger_sub, "export", "money movements as CSV (authorizations, captures, voids, refunds)"
    )
    _config_option(export)
    export.add_argument("--from", dest="from_", required=True, help="YYYY-MM-DD or ISO time")
    export.add_argument("--to", required=True, help="YYYY-MM-DD (included) or ISO time")
    export.add_argument("--acquirer", help="only this acquirer's movements")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.set_defaults(func=_ledger_export)


DEFAULT_HEALTH_URL = "http://127.0.0.1:8080/healthz"


def _health(args: argparse.Namespace) -> int:
    try:
        with urllib.request.urlopen(args.url, timeout=2) as answer:
            return 0 if answer.status == 200 else 1
    except (OSError, ValueError) as exc:
        print(f"payrouter health: {args.url}: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command in ("serve", "sandbox", "drain"):
        logs.configure()  # services log JSON lines; the tools below talk to people
    else:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    except SchemaNotCurrent as exc:
        print(f"{getattr(args, 'config', '')}: {exc}", file=sys.stderr)
        return 2
    except LedgerUnavailable as exc:
        print(f"the system of record did not answer: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
