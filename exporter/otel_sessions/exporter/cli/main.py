"""The ``otel-sessions`` command.

``otel-sessions serve`` runs the service; every flag defaults from its ``OTEL_SESSIONS_*``
env var (``otel-sessions serve --help`` lists them with their defaults). The lookup commands
(``sessions``, ``threads``, ``users``) live in commands.py, with the REST client in client.py and
the rendering in render.py; ``grpc`` in grpc_command.py, ``demo`` in demo.py; ``tokens new``
(a token for the tenants file, ``tenants.py``) here.
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

from otel_sessions.exporter.serve.settings import OPTIONS, Settings, SettingsError

__all__ = ["main", "build_parser", "package_version"]

_SETUP_HINT = ('the service needs the server extra: pip install ".[server]" in a clone, or '
               'pip install "otel-sessions[server] @ git+<repository URL>"')


def package_version() -> str:
    """The installed package's version (``importlib.metadata``), ``unknown`` when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("otel-sessions")
    except PackageNotFoundError:
        return "unknown"


def _add_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the OTLP receiver and session store",
        description="Receive OTLP traces and logs on gRPC and HTTP, store spans and log records grouped by session in Redis, "
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
            serve.add_argument(option.flag, dest=option.name, action="append", default=None,
                               metavar=option.metavar, help=help_text)
        else:
            serve.add_argument(option.flag, dest=option.name, default=None, metavar=option.metavar, help=help_text)


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on by a socket without SO_REUSEPORT (a listener of
    any process holds it), else None. The probe socket is closed at once."""
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve the address: {exc.strerror}"
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def access_line(settings: Settings) -> str:
    """What ``serve`` says about access at start: open, or the tenants and what needs no token."""
    if not settings.tenants:
        return "access: open (no token set): anyone who reaches the ports may send, read and delete"
    tenants = ", ".join(f"{t.name} ({len(t.tokens)} token{'s' * (len(t.tokens) != 1)}"
                        + (", quota" if t.quota.any else "") + ")" for t in settings.tenants)
    public = "/healthz, /readyz, gRPC health and reflection, the web page's files, /openapi.json"
    if settings.metrics_public:
        public += " and /metrics (--metrics-public)"
    return f"access: a token of the route's scope on every route but {public}; tenants: {tenants}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-sessions",
        description="Sessions for OpenTelemetry: store spans grouped by session in Redis and look them up.",
    )
    parser.add_argument("--version", action="version", version=f"otel-sessions {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_serve(sub)
    from otel_sessions.exporter.cli.commands import add_lookup_commands

    add_lookup_commands(sub)
    _add_demo(sub)
    _add_tokens(sub)
    return parser


def _add_tokens(sub: argparse._SubParsersAction) -> None:
    from otel_sessions.exporter.tenants import SCOPES

    tokens = sub.add_parser("tokens", help="make tokens for the tenants file (serve --tenants)",
                            description="Tokens of the tenants file (serve --tenants).")
    actions = tokens.add_subparsers(dest="tokens_command", metavar="ACTION")
    actions.required = True
    new = actions.add_parser(
        "new", help="print a new random token and its line for the tenants file",
        description="Print a new random token (32 random bytes, URL-safe base64) and the entry that goes under a "
        "tenant's 'tokens:' in the tenants file: the token's SHA-256 and its scopes. The token itself is stored "
        "nowhere: give it to the client (Authorization: Bearer <token>).")
    new.add_argument("--scopes", default="ingest,read",
                     help=f"comma-separated scopes of the token: {', '.join(SCOPES)} [default: %(default)s]")
    new.add_argument("--json", action="store_true", help='print {"token", "sha256", "scopes"} as JSON')
    new.add_argument("--out", metavar="FILE",
                     help="write the token to FILE (created readable by its owner only, for --token-file and the "
                          "Collector's bearertokenauth filename) instead of printing it")


def tokens(args: argparse.Namespace) -> int:
    import json

    from otel_sessions.exporter.tenants import SCOPES, new_token, token_sha256

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        print(f"otel-sessions: error: --scopes: use one or more of {', '.join(SCOPES)}"
              + (f" (not {unknown[0]!r})" if unknown else ""), file=sys.stderr)
        return 2
    token = new_token()
    if args.out:
        try:  # O_EXCL: never overwrite a token file; 0600 from the first byte
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            print(f"otel-sessions: error: --out: cannot create {args.out}: {exc.strerror}", file=sys.stderr)
            return 1
        with os.fdopen(fd, "w") as out:
            out.write(token)  # no final newline: the Collector's bearertokenauth reads the file as it is
    if args.json:
        print(json.dumps({**({} if args.out else {"token": token}), "sha256": token_sha256(token), "scopes": scopes,
                          **({"file": args.out} if args.out else {})}))
        return 0
    print(f"token written to {args.out}" if args.out else f"token: {token}")
    print("tenants file entry, for --tenants (paste under the tenant's tokens:; a single --ingest-token-file "
          "or --query-token-file has its own scopes):")
    print(f"      - sha256: {token_sha256(token)}")
    print(f"        scopes: [{', '.join(scopes)}]")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="send a realistic multi-agent conversation to a running service",
                          description="Send a thread of three sessions (router agent handing off to a support "
                          "and a billing agent, LLM calls with tokens, tool calls, a failed tool call, a "
                          "guardrail check) through the OpenTelemetry SDK to the service, then print the "
                          "commands that show it.")
    demo.add_argument("--endpoint", "--server", dest="endpoint",
                      default=os.environ.get("OTEL_SESSIONS_SERVER") or "http://127.0.0.1:4318",
                      help="HTTP address of the service (OTLP/HTTP and lookups; http:// is assumed when no "
                      "scheme is given) [env OTEL_SESSIONS_SERVER; default: %(default)s]")
    from otel_sessions.exporter.cli.token import INGEST_ENV, add_token_arguments

    add_token_arguments(demo, INGEST_ENV, "ingest token (serve --ingest-token)",
                        "; headers of OTEL_EXPORTER_OTLP_TRACES_HEADERS / OTEL_EXPORTER_OTLP_HEADERS are sent too")
    demo.add_argument("--seed", type=int, default=None, help="random seed: the same ids and figures each run, so a rerun adds nothing")
    demo.add_argument("--json", action="store_true", help="print the ids sent as JSON")


def demo(args: argparse.Namespace) -> int:
    import json

    from otel_sessions.exporter.cli.client import ServiceError, server_url
    from otel_sessions.exporter.cli.demo import DemoRefused, run_demo
    from otel_sessions.exporter.cli.token import INGEST_ENV, client_token

    args.endpoint = server_url(args.endpoint)
    try:
        token = client_token(args.token, args.token_file, INGEST_ENV)
    except ServiceError as exc:
        print(f"otel-sessions: error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        conversation = run_demo(args.endpoint, seed=args.seed, token=token)
    except (ConnectionError, DemoRefused) as exc:
        print(f"otel-sessions: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"thread_id": conversation.thread_id, "user_id": conversation.user_id,
                          "sessions": conversation.sessions}, indent=2))
        return 0
    server = "" if args.endpoint.rstrip("/") == "http://127.0.0.1:4318" else f" --server {args.endpoint}"
    first, last = conversation.sessions[0]["id"], conversation.sessions[-1]["id"]
    print(f"Sent {len(conversation.sessions)} sessions ({conversation.span_count} spans) of thread "
          f"{conversation.thread_id} for user {conversation.user_id} to {args.endpoint}.")
    print("Look at them:")
    for line in (f"otel-sessions sessions list --thread {conversation.thread_id}{server}",
                 f"otel-sessions sessions get {last} --tree{server}",
                 f"otel-sessions threads get {conversation.thread_id}{server}",
                 f"otel-sessions users get {conversation.user_id}{server}",
                 f"curl -s {args.endpoint.rstrip('/')}/v1/sessions/{first}"):
        print("  " + line)
    print(f"  or open {args.endpoint.rstrip('/')}/ in a browser")
    if token:
        print("  (the service has tokens: lookups need one with the read scope, given with --token-file FILE, "
              "--token or OTEL_SESSIONS_TOKEN; curl with -H 'Authorization: Bearer <token>')")
    return 0


def _say(message: str) -> None:
    print(f"otel-sessions: {message}", flush=True)


def _worker(settings: Settings, redis_url: str, index: int, parent_pid: int | None = None) -> None:
    """Entry point of one server process. A ``--workers`` process (``parent_pid`` set) gets
    SIGTERM when ``serve`` dies, even on kill -9 (Linux ``PR_SET_PDEATHSIG``)."""
    if parent_pid is not None and sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            return
    logging.basicConfig(level=settings.log_level.upper(),
                        format=f"%(asctime)s otel-sessions[{index}] %(levelname)s %(name)s: %(message)s")
    from otel_sessions.exporter.serve.process import Service

    def ready(listening) -> None:
        if index == 0:
            http = f"http://{listening.http[0]}:{listening.http[1]}"
            _say(f"OTLP/gRPC on {listening.grpc[0]}:{listening.grpc[1]} "
                 "(TraceService and LogsService; also otel_sessions.v1.SessionService, grpc.health.v1.Health, server reflection)")
            _say(f"OTLP/HTTP on {http}/v1/traces and {http}/v1/logs")
            _say(f"spans read by the {listening.span_reader}")
            _say(f"lookups on {http}/v1/sessions (OpenAPI: {http}/openapi.json), web page {http}/")
            _say(f"health {http}/healthz and {http}/readyz, metrics {http}/metrics")
            _say(access_line(settings))
            _say(f"Jaeger-compatible query API on {http}/api (Grafana's Jaeger data source, Jaeger UI)")
            for target in settings.forward:
                _say(f"forwarding every span and log record to {target}")
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
    _say(f"otel-sessions {package_version()} starting (pid {os.getpid()}, Python {sys.version.split()[0]})")
    from otel_sessions.exporter.serve.exposure import start_warnings

    for warning in start_warnings(settings):
        _say(f"warning: {warning}")
    if settings.workers > 1 and (settings.grpc_listen[1] == 0 or settings.http_listen[1] == 0):
        _say("error: --workers / OTEL_SESSIONS_WORKERS above 1 needs fixed ports, not port 0")
        return 2
    # workers share the ports with SO_REUSEPORT, which would let them join another serve's
    # ports too: a plain bind first finds a port in use, whoever holds it (and says so before
    # the embedded Redis starts, in one line)
    for what, flag, (host, port) in (("gRPC", "--grpc-listen", settings.grpc_listen),
                                     ("HTTP", "--http-listen", settings.http_listen)):
        if port:
            problem = port_in_use(host, port)
            if problem:
                _say(f"error: cannot listen on {host}:{port} for {what} ({flag}): {problem} "
                     "(another otel-sessions serve?)")
                return 1
    try:
        import grpc  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        _say(f"error: {_SETUP_HINT}")
        return 2

    embedded = None
    redis_url = settings.redis_url
    if redis_url is None:
        from otel_sessions.exporter.store.embedded_redis import (
            DataDirInUse,
            EmbeddedRedis,
            RedisBinaryNotFound,
        )

        data = settings.data_dir / "redis"
        try:  # the parent holds the folder's lock, also with --workers
            embedded = EmbeddedRedis(data, port=0, persistent=True, owner="otel-sessions serve").start()
        except DataDirInUse as exc:
            _say(f"error: {exc}: stop that one first, or give this one another --data-dir")
            return 1
        except (RedisBinaryNotFound, RuntimeError) as exc:
            _say(f"error: cannot start the embedded Redis: {exc}")
            return 1
        redis_url = embedded.url
        for pid in embedded.stopped_orphans:
            _say(f"redis: stopped redis-server pid {pid}, left running in {data} by a serve that is gone")
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
        workers = [context.Process(target=_worker, args=(settings, redis_url, i, os.getpid()),
                                   daemon=False)
                   for i in range(settings.workers)]
        for process in workers:
            process.start()

        def forward(signum, _frame) -> None:
            for process in workers:
                if process.is_alive() and process.pid:
                    os.kill(process.pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGHUP, forward)  # each worker reads the tenants file again
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
    if args.command == "demo":
        return demo(args)
    if args.command == "tokens":
        return tokens(args)
    if hasattr(args, "func"):
        from otel_sessions.exporter.cli.commands import run

        return run(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
