"""Ingest benchmark: spans/s stored end to end, beside a parse-only baseline, and Redis bytes per span.

    .venv/bin/python bench/ingest.py [--requests 200] [--rounds 3] [--workers 2]

What runs, all on this machine:
* requests: ``--requests`` OTLP export requests of 512 realistic LLM spans each (about 50
  sessions per request out of a pool of ``--sessions``, fresh trace and span ids per request),
  encoded once with the stock OTLP exporter's encoder (``bench/workload.py``);
* load: ``--loaders`` separate processes replay them over gRPC, ``--inflight`` requests in
  flight each; every request is sent exactly once per round;
* ours: ``otel-sessions serve`` with ``--workers`` processes (SO_REUSEPORT) and its own
  redis-server (append-only file, as the embedded default); a round ends when every request
  was acknowledged, and the spans are then counted in Redis (sum of the sessions' span
  counts), not by the client;
* baseline: a gRPC receiver with the same worker count that only parses each request and
  answers success.

Rounds alternate baseline and ours; medians are printed, so the ratio holds on a noisy machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the parse-only baseline receiver --------------------------------------------------------
def _baseline_worker(port: int) -> None:
    import asyncio

    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    ok = ExportTraceServiceResponse().SerializeToString()

    async def export(body: bytes, context) -> bytes:
        ExportTraceServiceRequest.FromString(body)
        return ok

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.so_reuseport", 1)])
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(export)})
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(main())


# --- load generator ----------------------------------------------------------------------------
def _loader(target: str, bodies_file: str, indexes: list[int], inflight: int, start_at: float, out) -> None:
    import grpc

    with open(bodies_file, "rb") as f:
        bodies = pickle.load(f)
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
    export = channel.unary_unary(EXPORT)
    grpc.channel_ready_future(channel).result(timeout=30)
    while time.time() < start_at:
        time.sleep(0.001)
    pending = []
    failures = 0
    for i in indexes:
        pending.append(export.future(bodies[i], timeout=120))
        if len(pending) >= inflight:
            try:
                pending.pop(0).result()
            except grpc.RpcError:
                failures += 1
    for future in pending:
        try:
            future.result()
        except grpc.RpcError:
            failures += 1
    out.put((time.time(), failures, time.process_time()))


def drive(target: str, bodies_file: str, n_requests: int, loaders: int, inflight: int) -> tuple[float, int, float]:
    """Send every request once from ``loaders`` processes; returns (seconds, failed requests, loader CPU s)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 2.0
    procs = [ctx.Process(target=_loader, args=(target, bodies_file, list(range(k, n_requests, loaders)),
                                               inflight, start_at, out)) for k in range(loaders)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return (max(end for end, _f, _c in results) - start_at, sum(f for _e, f, _c in results),
            sum(c for _e, _f, c in results))


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def _redis_cpu(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _tree_cpu(root_pid: int) -> float:
    """CPU seconds so far of a process and its live descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack += [child for child, parent in parents.items() if parent == pid]
    return total


def stored_spans(redis_client, prefix: str = "ots") -> int:
    """Spans counted in Redis: the sum of every session's span count (via the time index)."""
    from otel_sessions.exporter.keys import INDEX_SHARDS, Keys

    keys = Keys(prefix)
    ids = [m for shard in range(INDEX_SHARDS) for m in redis_client.zrange(keys.seen(shard), 0, -1)]
    pipe = redis_client.pipeline(transaction=False)
    for sid in ids:
        pipe.hget(keys.summary(sid.decode()), "spans")
    return sum(int(v or 0) for v in pipe.execute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=2000, help="session pool the requests draw from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loaders", type=int, default=2)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument("--no-aof", dest="aof", action="store_false",
                        help="run Redis without its append-only file (the embedded default has one)")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    import redis
    from workload import export_requests

    from otel_sessions.exporter.embedded_redis import EmbeddedRedis

    tmp = Path(tempfile.mkdtemp(prefix="otel-sessions-bench-"))
    print(f"encoding {args.requests} requests x 512 spans with the stock OTLP encoder ...", flush=True)
    bodies = list(export_requests(args.requests, session_pool=args.sessions))
    wire = statistics.mean(len(b) for b in bodies) / 512
    bodies_file = tmp / "bodies.pickle"
    bodies_file.write_bytes(pickle.dumps(bodies))
    total_spans = 512 * args.requests
    print(f"{total_spans} spans, {wire:.0f} bytes per span on the wire; {args.workers} server workers, "
          f"{args.loaders} load processes x {args.inflight} in flight; {os.cpu_count()} cores", flush=True)

    redis_server = EmbeddedRedis(tmp / "redis", port=None, persistent=True).start()
    client = redis.Redis.from_url(redis_server.url)
    ours, base, mem = [], [], []
    try:
        for round_no in range(1, args.rounds + 1):
            # baseline: parse only
            port = free_port()
            ctx = multiprocessing.get_context("spawn")
            servers = [ctx.Process(target=_baseline_worker, args=(port,)) for _ in range(args.workers)]
            for s in servers:
                s.start()
            wait_port(port)
            seconds, _failures, _cpu = drive(f"127.0.0.1:{port}", str(bodies_file), args.requests,
                                             args.loaders, args.inflight)
            for s in servers:
                s.terminate()
                s.join()
            base.append(total_spans / seconds)

            # ours: the real service and store
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
            time.sleep(1.0)  # every worker bound
            redis_cpu = _redis_cpu(client)
            server_before = _tree_cpu(service.pid)
            seconds, failures_ours, loader_cpu = drive(f"127.0.0.1:{grpc_port}", str(bodies_file), args.requests,
                                                       args.loaders, args.inflight)
            redis_cpu = _redis_cpu(client) - redis_cpu
            server_cpu = _tree_cpu(service.pid) - server_before
            service.send_signal(signal.SIGTERM)
            service.wait(30)
            stored = stored_spans(client)
            used = client.info("memory")["used_memory"] - used_before
            ours.append(stored / seconds)
            mem.append(used / max(stored, 1))
            print(f"round {round_no}: baseline {base[-1]:,.0f} spans/s; ours {ours[-1]:,.0f} spans/s stored "
                  f"({stored} of {total_spans} counted in Redis, {failures_ours} failed requests); "
                  f"{mem[-1]:.0f} bytes of Redis memory per span; CPU per span: server "
                  f"{server_cpu / stored * 1e6:.1f} µs, Redis {redis_cpu / stored * 1e6:.1f} µs, load "
                  f"{loader_cpu / stored * 1e6:.1f} µs", flush=True)
    finally:
        redis_server.stop()
    print()
    print(f"median baseline (parse only):  {statistics.median(base):>10,.0f} spans/s")
    print(f"median otel-sessions (stored): {statistics.median(ours):>10,.0f} spans/s "
          f"= {statistics.median(ours) / statistics.median(base):.1%} of baseline")
    print(f"median Redis memory per span:  {statistics.median(mem):>10.0f} bytes ({wire:.0f} on the wire)")


if __name__ == "__main__":
    main()
