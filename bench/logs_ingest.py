"""Log ingest benchmark: log records/s stored end to end, beside a parse-only baseline, and Redis
bytes per record.

    .venv/bin/python bench/logs_ingest.py [--requests 200] [--rounds 3] [--workers 2] [--protocol grpc|http]

The same setup as ``bench/ingest.py`` (whose load generator, ports and CPU accounting it reuses),
for OTLP logs:

* requests: ``--requests`` ``ExportLogsServiceRequest`` bodies of ``--records`` (1,000) log
  records each, about 320 bytes per record on the wire, 50 sessions per request out of a pool
  of ``--sessions`` (60% of them turns of a thread); each session's records of a request come from one to three conversation
  turns (a trace each, records on its spans), as the Python ``LoggingHandler`` with
  ``SessionLogProcessor`` writes them (``code.*`` attributes, ``session.id``,
  ``gen_ai.conversation.id``, ``user.id``, INFO mostly, some WARN and ERROR); encoded once,
  straight as OTLP protobuf;
* load: ``--loaders`` processes replay them, ``--inflight`` requests in flight each, every
  request exactly once per round, over ``LogsService/Export`` (gRPC) or ``POST /v1/logs``;
* ours: ``otel-sessions serve --workers N`` with its own redis-server (append-only file);
  records are then counted in Redis (sum of the sessions' ``logs`` field), not by the client;
* baseline: ``--workers`` processes that only parse each ExportLogsServiceRequest.

Redis memory per record is ``used_memory`` after a round minus before, over the records stored.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import GrpcReplay, HttpReplay, _redis_cpu, _tree_cpu, free_port, wait_port  # noqa: E402

LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

_MESSAGES = (
    (9, "INFO", "looking up order {order} for customer {customer}"),
    (9, "INFO", "tool search_orders returned {n} results in {ms} ms"),
    (9, "INFO", "routing turn to {agent} (confidence {conf})"),
    (9, "INFO", "model call gpt-4o-mini: {n} input tokens, {m} output tokens"),
    (9, "INFO", "cache miss for invoice {order}, fetching from billing"),
    (13, "WARN", "retrying lookup_invoice after HTTP 429 (attempt {n})"),
    (13, "WARN", "customer {customer} has {n} open tickets"),
    (17, "ERROR", "refund_payment failed for order {order}: card declined (code {n})"),
)
_CODE = (("/app/bot/router.py", "route_turn"), ("/app/bot/orders.py", "search_orders"),
         ("/app/bot/billing.py", "lookup_invoice"), ("/app/bot/llm.py", "complete"))


def _kv(key: str, value):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def export_requests(n_requests: int, records_per_request: int = 1000, sessions_per_request: int = 50,
                    session_pool: int = 2000, seed: int = 1) -> Iterator[bytes]:
    """Serialized ``ExportLogsServiceRequest`` bodies (fresh traces, spans and times each)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
    from workload import session_ids

    rng = random.Random(seed)
    sessions = session_ids(session_pool, seed)
    per_session = records_per_request // sessions_per_request
    now = time.time_ns()
    for _ in range(n_requests):
        request = ExportLogsServiceRequest()
        rl = request.resource_logs.add()
        for key, value in (("service.name", "support-bot"), ("service.version", "1.4.2"),
                           ("deployment.environment.name", "production"), ("host.name", "api-7f9c6d7b5-x2kqj"),
                           ("telemetry.sdk.language", "python"), ("telemetry.sdk.name", "opentelemetry"),
                           ("telemetry.sdk.version", "1.38.0")):
            rl.resource.attributes.append(_kv(key, value))
        sl = rl.scope_logs.add()
        sl.scope.name = "support_bot"
        for sid, user, thread, _name in rng.sample(sessions, sessions_per_request):
            ids = [_kv("session.id", sid), _kv("user.id", user)]
            if int(sid[-2:], 16) < 154:  # 60% of the sessions are turns of a thread (conversation)
                ids.append(_kv("gen_ai.conversation.id", thread))
            traces = [(rng.getrandbits(128).to_bytes(16, "big"), [rng.getrandbits(64).to_bytes(8, "big")
                                                                   for _ in range(rng.randint(2, 4))])
                      for _ in range(rng.randint(1, 3))]
            for _ in range(per_session):
                trace_id, spans = rng.choice(traces)
                severity, text, template = rng.choices(_MESSAGES, weights=(6, 6, 4, 6, 3, 2, 2, 1))[0]
                body = template.format(order=f"ord_{rng.getrandbits(40):010x}", customer=f"cus_{rng.getrandbits(32):08x}",
                                       n=rng.randint(1, 900), m=rng.randint(1, 400), ms=rng.randint(3, 900),
                                       agent=rng.choice(("billing_agent", "support_agent")),
                                       conf=f"{rng.random():.2f}")
                path, function = rng.choice(_CODE)
                now += rng.randint(1_000_000, 40_000_000)
                sl.log_records.append(LogRecord(
                    time_unix_nano=now, observed_time_unix_nano=now + rng.randint(10_000, 900_000),
                    severity_number=severity, severity_text=text, body=_kv("", body).value, flags=1,
                    trace_id=trace_id, span_id=rng.choice(spans),
                    attributes=[_kv("code.file.path", path), _kv("code.function.name", function),
                                _kv("code.line.number", rng.randint(20, 400)), *ids]))
        yield request.SerializeToString()


# --- the parse-only baseline receiver --------------------------------------------------------
def _baseline_worker(grpc_port: int, http_port: int) -> None:
    """OTLP/gRPC LogsService and OTLP/HTTP /v1/logs, both ports shared by the workers; parses
    each request and answers an empty ExportLogsServiceResponse."""
    import asyncio

    import grpc
    from aiohttp import web
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )

    ok = ExportLogsServiceResponse().SerializeToString()

    async def export(body: bytes, context) -> bytes:
        ExportLogsServiceRequest.FromString(body)
        return ok

    async def post_logs(request: web.Request) -> web.Response:
        ExportLogsServiceRequest.FromString(await request.read())
        return web.Response(body=ok, content_type="application/x-protobuf")

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.so_reuseport", 1)])
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.logs.v1.LogsService", {"Export": grpc.unary_unary_rpc_method_handler(export)}),))
        server.add_insecure_port(f"127.0.0.1:{grpc_port}")
        await server.start()
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/logs", post_logs)
        runner = web.AppRunner(app, auto_decompress=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", http_port, reuse_port=True).start()
        await server.wait_for_termination()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(main())


# --- load generator: bench/ingest.py's, on the logs paths ------------------------------------
class GrpcLogsReplay(GrpcReplay):
    """``LogsService/Export`` calls on one channel (``GrpcReplay``'s submit and result)."""

    def __init__(self, host: str, port: int, inflight: int) -> None:
        import grpc

        self.error = grpc.RpcError
        channel = grpc.insecure_channel(f"{host}:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
        grpc.channel_ready_future(channel).result(timeout=30)
        self.export = channel.unary_unary(LOGS_EXPORT)


class HttpLogsReplay(HttpReplay):
    def __init__(self, host: str, port: int, inflight: int) -> None:
        super().__init__(host, port, inflight)
        self.head = self.head.replace(b"POST /v1/traces ", b"POST /v1/logs ")


def _loader(protocol: str, port: int, bodies_file: str, indexes: list[int], inflight: int, start_at: float,
            out) -> None:
    with open(bodies_file, "rb") as f:
        bodies = pickle.load(f)
    replay = (HttpLogsReplay if protocol == "http" else GrpcLogsReplay)("127.0.0.1", port, inflight)
    time.sleep(max(0.0, start_at - time.time()))
    cpu = time.process_time()
    pending = []
    failures = 0
    for i in indexes:
        if len(pending) >= inflight:
            failures += not replay.result(pending.pop(0))
        pending.append(replay.submit(bodies[i]))
    for handle in pending:
        failures += not replay.result(handle)
    out.put((time.time(), failures, time.process_time() - cpu))


def drive(protocol: str, port: int, bodies_file: str, n_requests: int, loaders: int,
          inflight: int) -> tuple[float, int, float]:
    """Send every request once from ``loaders`` processes; (seconds, failed requests, loader CPU s)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 2.0
    procs = [ctx.Process(target=_loader, args=(protocol, port, bodies_file, list(range(k, n_requests, loaders)),
                                               inflight, start_at, out)) for k in range(loaders)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return (max(end for end, _f, _c in results) - start_at, sum(f for _e, f, _c in results),
            sum(c for _e, _f, c in results))


def stored_records(redis_client, prefix: str = "ots") -> tuple[int, int]:
    """(log records counted in Redis, sessions): the sum of every session's ``logs`` field."""
    from otel_sessions.exporter.store.keys import INDEX_SHARDS, Keys

    keys = Keys(prefix)
    ids = [m for shard in range(INDEX_SHARDS) for m in redis_client.zrange(keys.seen(shard), 0, -1)]
    pipe = redis_client.pipeline(transaction=False)
    for sid in ids:
        pipe.hget(keys.summary(sid.decode()), "logs")
    return sum(int(v or 0) for v in pipe.execute()), len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--records", type=int, default=1000, help="log records per request")
    parser.add_argument("--sessions", type=int, default=2000, help="session pool the requests draw from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loaders", type=int, default=2)
    parser.add_argument("--inflight", type=int, default=5)
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--no-aof", dest="aof", action="store_false")
    args = parser.parse_args()

    import redis

    from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis

    tmp = Path(tempfile.mkdtemp(prefix="otel-sessions-bench-logs-"))
    print(f"encoding {args.requests} requests x {args.records} log records ...", flush=True)
    bodies = list(export_requests(args.requests, args.records, session_pool=args.sessions))
    wire = statistics.mean(len(b) for b in bodies) / args.records
    bodies_file = tmp / "bodies.pickle"
    bodies_file.write_bytes(pickle.dumps(bodies))
    total = args.records * args.requests
    print(f"{total} records, {wire:.0f} bytes per record on the wire; {args.workers} server workers, "
          f"{args.loaders} load processes x {args.inflight} in flight over OTLP/{args.protocol.upper()}; "
          f"{os.cpu_count()} cores", flush=True)

    redis_server = EmbeddedRedis(tmp / "redis", port=None, persistent=True).start()
    client = redis.Redis.from_url(redis_server.url)
    ours, base, mem = [], [], []
    try:
        for round_no in range(1, args.rounds + 1):
            grpc_port, http_port = free_port(), free_port()
            ctx = multiprocessing.get_context("spawn")
            servers = [ctx.Process(target=_baseline_worker, args=(grpc_port, http_port)) for _ in range(args.workers)]
            for s in servers:
                s.start()
            wait_port(grpc_port)
            wait_port(http_port)
            time.sleep(1.0)
            port = http_port if args.protocol == "http" else grpc_port
            seconds, failures_base, _cpu = drive(args.protocol, port, str(bodies_file), args.requests, args.loaders,
                                                 args.inflight)
            for s in servers:
                s.terminate()
                s.join()
            base.append(total / seconds)

            client.flushall()
            client.config_set("appendonly", "yes" if args.aof else "no")
            used_before = client.info("memory")["used_memory"]
            grpc_port, http_port = free_port(), free_port()
            service = subprocess.Popen(
                [sys.executable, "-m", "otel_sessions.exporter.cli", "serve", "--redis-url", redis_server.url,
                 "--grpc-listen", f"127.0.0.1:{grpc_port}", "--http-listen", f"127.0.0.1:{http_port}",
                 "--workers", str(args.workers), "--log-level", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wait_port(grpc_port)
            wait_port(http_port)
            time.sleep(1.0)
            port = http_port if args.protocol == "http" else grpc_port
            redis_cpu = _redis_cpu(client)
            server_before = _tree_cpu(service.pid)
            seconds, failures_ours, _cpu = drive(args.protocol, port, str(bodies_file), args.requests, args.loaders,
                                                 args.inflight)
            redis_cpu = _redis_cpu(client) - redis_cpu
            server_cpu = _tree_cpu(service.pid) - server_before
            service.send_signal(signal.SIGTERM)
            service.wait(30)
            stored, sessions = stored_records(client)
            used = client.info("memory")["used_memory"] - used_before
            ours.append(stored / seconds)
            mem.append(used / max(stored, 1))
            print(f"round {round_no}: baseline {base[-1]:,.0f} records/s ({failures_base} failed requests); ours "
                  f"{ours[-1]:,.0f} records/s stored ({stored} of {total} counted in Redis, {sessions} sessions, "
                  f"{failures_ours} failed requests); {mem[-1]:.0f} bytes of Redis memory per record; CPU per "
                  f"record: server {server_cpu / max(stored, 1) * 1e6:.1f} µs, Redis "
                  f"{redis_cpu / max(stored, 1) * 1e6:.1f} µs", flush=True)
    finally:
        redis_server.stop()
    print()
    print(f"median baseline (parse only):  {statistics.median(base):>10,.0f} records/s")
    print(f"median otel-sessions (stored): {statistics.median(ours):>10,.0f} records/s "
          f"= {statistics.median(ours) / statistics.median(base):.1%} of baseline")
    print(f"median Redis memory per record: {statistics.median(mem):>9.0f} bytes ({wire:.0f} on the wire)")


if __name__ == "__main__":
    main()
