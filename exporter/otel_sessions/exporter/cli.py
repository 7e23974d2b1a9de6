"""The ``otel-sessions`` command.

``otel-sessions serve`` runs the service; every flag defaults from its ``OTEL_SESSIONS_*``
env var (``otel-sessions serve --help`` lists them with their defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Sequence

from .settings import OPTIONS, Settings, SettingsError

__all__ = ["main", "build_parser"]

_SETUP_HINT = 'the service needs the server extra: pip install "otel-sessions[server]"'


def _add_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the OTLP receiver and session store",
        description="Receive OTLP traces on gRPC and HTTP, store spans grouped by session in Redis, "
        "serve lookups. Every flag defaults from its env var.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in OPTIONS:
        default = "none" if option.default in (None, ()) else option.default
        help_text = f"{option.help} [env {option.env}; default: {default}]"
        if isinstance(option.default, bool):
            serve.add_argument(option.flag, dest=option.name, action="store_const", const=True, default=None,
                               help=help_text)
        elif option.repeatable:
            serve.add_argument(option.flag, dest=option.name, action="append", default=None, metavar="URL",
                               help=help_text)
        else:
            serve.add_argument(option.flag, dest=option.name, default=None, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-sessions",
        description="Sessions for OpenTelemetry: store spans grouped by session in Redis and look them up.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_serve(sub)
    return parser


def _say(message: str) -> None:
    print(f"otel-sessions: {message}", flush=True)


def _worker(settings: Settings, redis_url: str, index: int) -> None:
    """Entry point of one server process."""
    logging.basicConfig(level=settings.log_level.upper(),
                        format=f"%(asctime)s otel-sessions[{index}] %(levelname)s %(name)s: %(message)s")
    from .server import Service

    def ready(listening) -> None:
        if index == 0:
            _say(f"OTLP/gRPC on {listening.grpc[0]}:{listening.grpc[1]} (also health, reflection)")
            _say(f"OTLP/HTTP on http://{listening.http[0]}:{listening.http[1]}/v1/traces "
                 f"(also the Jaeger-compatible /api, /healthz, /readyz, /metrics)")
            for target in settings.forward:
                _say(f"forwarding every span to {target}")
            if settings.workers > 1:
                _say(f"{settings.workers} worker processes share both ports")
            _say("ready")

    try:
        asyncio.run(Service(settings, redis_url).run_until_signal(ready))
    except RuntimeError as exc:
        _say(f"error: {exc}")
        sys.exit(1)


def serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.resolve(vars(args))
    except SettingsError as exc:
        _say(f"error: {exc}")
        return 2
    if settings.workers > 1 and (settings.grpc_listen[1] == 0 or settings.http_listen[1] == 0):
        _say("error: --workers / OTEL_SESSIONS_WORKERS above 1 needs fixed ports, not port 0")
        return 2
    try:
        import grpc  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        _say(f"error: {_SETUP_HINT}")
        return 2

    embedded = None
    redis_url = settings.redis_url
    if redis_url is None:
        from .embedded_redis import EmbeddedRedis, RedisBinaryNotFound

        data = settings.data_dir / "redis"
        try:
            embedded = EmbeddedRedis(data, port=0, persistent=True).start()
        except (RedisBinaryNotFound, RuntimeError) as exc:
            _say(f"error: cannot start the embedded Redis: {exc}")
            return 1
        redis_url = embedded.url
        _say(f"redis: embedded redis-server (pid {embedded.pid}) at {redis_url}, append-only data in {data}")
    else:
        _say(f"redis: {settings.redacted_redis_url}{' (cluster)' if settings.redis_cluster else ''}")

    try:
        if settings.workers == 1:
            _worker(settings, redis_url, 0)
            return 0
        metrics_dir = tempfile.mkdtemp(prefix="otel-sessions-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=_worker, args=(settings, redis_url, i), daemon=False)
                   for i in range(settings.workers)]
        for process in workers:
            process.start()

        def forward(signum, _frame) -> None:
            for process in workers:
                if process.is_alive() and process.pid:
                    os.kill(process.pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for process in workers:
            process.join()
        return max((p.exitcode or 0) for p in workers)
    finally:
        if embedded is not None:
            embedded.stop()
            _say("embedded redis stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
