"""Ingest benchmark: spans/s stored end to end, beside a parse-only baseline, and Redis bytes per span.

    .venv/bin/python bench/ingest.py [--requests 200] [--rounds 3] [--workers 2] [--protocol grpc|http]

What runs, all on this machine:
* requests: ``--requests`` OTLP export requests of 512 realistic LLM spans each (about 50
  sessions per request out of a pool of ``--sessions``, fresh trace and span ids per request),
  encoded once with the stock OTLP exporter's encoder (``bench/workload.py``);
* load: ``--loaders`` separate processes replay these bodies, ``--inflight`` requests in flight
  each, every request exactly once per round, to the baseline and to ours alike, over
  ``--protocol``:
  - ``grpc`` (default: OTLP's default transport, and the Collector's): OTLP/gRPC
    ``TraceService/Export`` with the sync ``grpc`` client, one channel per process; it costs
    the load processes about five times the CPU of ``http`` (grpc.aio and channel options
    such as larger HTTP/2 frames or windows measured no cheaper);
  - ``http``: OTLP/HTTP ``POST /v1/traces``, ``application/x-protobuf``, one
    keep-alive HTTP/1.1 connection per request in flight, written and read on plain sockets;
* ours: ``otel-sessions serve`` with ``--workers`` processes (SO_REUSEPORT) and its own
  redis-server (append-only file, as the embedded default); a round ends when every request
  was acknowledged, and the spans are then counted in Redis (sum of the sessions' span
  counts), not by the client;
* baseline: ``--workers`` processes sharing an OTLP/gRPC (grpc.aio) and an OTLP/HTTP (aiohttp)
  port like the service; each only parses the ExportTraceServiceRequest and answers an empty
  ExportTraceServiceResponse. The two baselines differ (the OTLP/HTTP one takes about 2.5
  times the spans/s of the OTLP/gRPC one here), so compare ratios only at the same ``--protocol``.

CPU per span is counted for the service's process tree, redis-server and the load processes
(from the common start to their last answer; importing, unpickling and connecting happen
before and are left out). Rounds alternate baseline and ours; medians are printed, so the
ratio holds on a noisy machine.
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
def _baseline_worker(grpc_port: int, http_port: int) -> None:
    """One worker: OTLP/gRPC and OTLP/HTTP, both ports shared by the workers (SO_REUSEPORT) as
    in the service; parses each request and answers an empty ExportTraceServiceResponse."""
    import asyncio

    import grpc
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    ok = ExportTraceServiceResponse().SerializeToString()

    async def export(body: bytes, context) -> bytes:
        ExportTraceServiceRequest.FromString(body)
        return ok

    async def post_traces(request: web.Request) -> web.Response:
        ExportTraceServiceRequest.FromString(await request.read())
        return web.Response(body=ok, content_type="application/x-protobuf")

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.so_reuseport", 1)])
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(export)})
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{grpc_port}")
        await server.start()
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/traces", post_traces)
        runner = web.AppRunner(app, auto_decompress=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", http_port, reuse_port=True).start()
        await server.wait_for_termination()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(main())


# --- load generator ----------------------------------------------------------------------------
class GrpcReplay:
    """OTLP/gRPC: ``TraceService/Export`` calls on one channel (one HTTP/2 connection)."""

    def __init__(self, host: str, port: int, inflight: int) -> None:
        import grpc

        self.error = grpc.RpcError
        channel = grpc.insecure_channel(f"{host}:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
        grpc.channel_ready_future(channel).result(timeout=30)
        self.export = channel.unary_unary(EXPORT)

    def submit(self, body: bytes):
        return self.export.future(body, timeout=120)

    def result(self, future) -> bool:
        try:
            future.result()
            return True
        except self.error:
            return False


class HttpReplay:
    """OTLP/HTTP: ``POST /v1/traces`` with ``application/x-protobuf``, on ``inflight`` keep-alive
    HTTP/1.1 connections. The framing is written by hand: with http.client the load processes
    took about twice the CPU (its header handling costs about as much as sending the body)."""

    def __init__(self, host: str, port: int, inflight: int) -> None:
        self.address = (host, port)
        self.free = [self.connect() for _ in range(inflight)]
        self.head = (f"POST /v1/traces HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     "Content-Type: application/x-protobuf\r\nContent-Length: ").encode()

    def connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def submit(self, body: bytes):
        sock = self.free.pop()
        sock.sendall(self.head + b"%d\r\n\r\n" % len(body))
        sock.sendall(body)
        return sock

    def result(self, sock) -> bool:
        """Read one whole response; a connection the receiver closes counts as a failure and is replaced."""
        try:
            status, headers = _read_response(sock)
        except (OSError, LookupError, ValueError):  # reset, or no Content-Length
            status, headers = b"", {}
        if not status or headers.get(b"connection", b"").lower() == b"close":
            sock.close()
            sock = self.connect()
        self.free.append(sock)
        return status == b"200"


def _read_response(sock: socket.socket) -> tuple[bytes, dict[bytes, bytes]]:
    """Status code and headers of one HTTP/1.1 response, its ``Content-Length`` bytes of body read."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines[1:])}
    while len(body) < int(headers[b"content-length"]):
        body += _recv(sock)
    return lines[0].split()[1], headers


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the receiver closed the connection")
    return chunk


def _loader(protocol: str, port: int, bodies_file: str, indexes: list[int], inflight: int, start_at: float,
            out) -> None:
    with open(bodies_file, "rb") as f:
        bodies = pickle.load(f)
    replay = (HttpReplay if protocol == "http" else GrpcReplay)("127.0.0.1", port, inflight)
    time.sleep(max(0.0, start_at - time.time()))
    cpu = time.process_time()  # from the start: importing, unpickling and connecting are not counted
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
    """Send every request once from ``loaders`` processes; returns (seconds, failed requests, loader CPU s)."""
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
    from otel_sessions.exporter.store.keys import INDEX_SHARDS, Keys

    keys = Keys(prefix)
    ids = [m for shard in range(INDEX_SHARDS) for m in redis_client.zrange(keys.seen(shard), 0, -1)]
    pipe = redis_client.pipeline(transaction=False)
    for sid in ids:
        pipe.hget(keys.summary(sid.decode()), "spans")
    return sum(int(v or 0) for v in pipe.execute())


def script_names() -> dict[bytes, str]:
    """SHA1 (hex, as bytes) -> name of every Lua script of the store."""
    from otel_sessions.exporter.store.gateway import SCRIPTS, Script

    return {Script(name).sha.encode(): name for name in SCRIPTS}


def redis_time_by_call(client, names: dict[bytes, str]) -> dict[str, tuple[int, int]]:
    """Redis time spent per command (scripts by name) since the slow log was reset with a
    threshold of 0: name -> (calls, µs). The slow log keeps the last ``slowlog-max-len`` calls."""
    out: dict[str, list[int]] = {}
    for entry in client.slowlog_get(-1):
        command = entry["command"].split(b" ")
        name = command[0].decode().lower()
        if name in ("evalsha", "evalsha_ro") and len(command) > 1:
            name = names.get(command[1], "evalsha")
        if name in ("slowlog", "info", "config"):
            continue
        figures = out.setdefault(name, [0, 0])
        figures[0] += 1
        figures[1] += entry["duration"]
    return {name: (calls, us) for name, (calls, us) in out.items()}


def memory_by_family(client, prefix: str = "ots") -> dict[str, int]:
    """Bytes of ``MEMORY USAGE`` (all samples) per key family: the key with its hash tag and
    the parts naming a trace, bucket, epoch, user, thread or name replaced by ``*``."""
    import re

    out: dict[str, int] = {}
    keys = list(client.scan_iter(match=prefix + ":*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    for key, used in zip(keys, pipe.execute()):
        text = key.decode(errors="replace").split("}", 1)[-1]
        family = re.sub(r"^m\d+\.\d+$", "trace map", text)
        family = re.sub(r":(ids|logids):\d+:\d+$", r":\1:K:B", family)
        family = re.sub(r":(p|lp|s|user|thread|name|ops):.*$", r":\1:*", family)
        out[family] = out.get(family, 0) + (used or 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=2000, help="session pool the requests draw from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loaders", type=int, default=2)
    parser.add_argument("--inflight", type=int, default=5,
                        help="requests in flight per load process (2 x 5 = the Collector's default of 10 "
                             "sending-queue consumers)")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc",
                        help="OTLP transport of the load generator, for the baseline and ours alike")
    parser.add_argument("--no-aof", dest="aof", action="store_false",
                        help="run Redis without its append-only file (the embedded default has one)")
    parser.add_argument("--unix-socket", action="store_true",
                        help="reach Redis over a unix socket, as serve does with its embedded Redis (default: TCP)")
    parser.add_argument("--breakdown", action="store_true",
                        help="after each round of ours, print Redis time per stored span by script and command "
                             "(the slow log at threshold 0, which adds a little Redis CPU) and Redis memory per "
                             "stored span by key family (MEMORY USAGE)")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    import redis
    from workload import export_requests

    from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis

    tmp = Path(tempfile.mkdtemp(prefix="otel-sessions-bench-"))
    print(f"encoding {args.requests} requests x 512 spans with the stock OTLP encoder ...", flush=True)
    bodies = list(export_requests(args.requests, session_pool=args.sessions))
    wire = statistics.mean(len(b) for b in bodies) / 512
    bodies_file = tmp / "bodies.pickle"
    bodies_file.write_bytes(pickle.dumps(bodies))
    total_spans = 512 * args.requests
    print(f"{total_spans} spans, {wire:.0f} bytes per span on the wire; {args.workers} server workers, "
          f"{args.loaders} load processes x {args.inflight} in flight over OTLP/{args.protocol.upper()}; "
          f"{os.cpu_count()} cores", flush=True)

    redis_server = EmbeddedRedis(tmp / "redis", port=0 if args.unix_socket else None, persistent=True).start()
    client = redis.Redis.from_url(redis_server.url)
    ours, base, mem = [], [], []
    load_base, load_ours = [], []
    try:
        for round_no in range(1, args.rounds + 1):
            # baseline: parse only
            grpc_port, http_port = free_port(), free_port()
            ctx = multiprocessing.get_context("spawn")
            servers = [ctx.Process(target=_baseline_worker, args=(grpc_port, http_port)) for _ in range(args.workers)]
            for s in servers:
                s.start()
            wait_port(grpc_port)
            wait_port(http_port)
            time.sleep(1.0)  # every worker bound
            port = http_port if args.protocol == "http" else grpc_port
            seconds, failures_base, loader_cpu = drive(args.protocol, port, str(bodies_file), args.requests,
                                                       args.loaders, args.inflight)
            for s in servers:
                s.terminate()
                s.join()
            base.append(total_spans / seconds)
            load_base.append(loader_cpu / total_spans * 1e6)

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
            wait_port(http_port)
            time.sleep(1.0)  # every worker bound
            port = http_port if args.protocol == "http" else grpc_port
            if args.breakdown:
                client.config_set("slowlog-log-slower-than", 0)
                client.config_set("slowlog-max-len", 1_000_000)
                client.slowlog_reset()
            redis_cpu = _redis_cpu(client)
            server_before = _tree_cpu(service.pid)
            seconds, failures_ours, loader_cpu = drive(args.protocol, port, str(bodies_file), args.requests,
                                                       args.loaders, args.inflight)
            redis_cpu = _redis_cpu(client) - redis_cpu
            server_cpu = _tree_cpu(service.pid) - server_before
            service.send_signal(signal.SIGTERM)
            service.wait(30)
            times = {}
            if args.breakdown:
                client.config_set("slowlog-log-slower-than", -1)
                times = redis_time_by_call(client, script_names())
                client.slowlog_reset()  # its entries would count as used memory
            stored = stored_spans(client)
            used = client.info("memory")["used_memory"] - used_before
            if args.breakdown:
                print("  Redis time per stored span: " + ", ".join(
                    f"{name} {us / max(stored, 1):.2f} µs ({calls} calls, {us / calls:.0f} µs each)"
                    for name, (calls, us) in sorted(times.items(), key=lambda item: -item[1][1])), flush=True)
                families = memory_by_family(client)
                print("  Redis memory per stored span: " + ", ".join(
                    f"{name} {size / max(stored, 1):.1f} B"
                    for name, size in sorted(families.items(), key=lambda item: -item[1])), flush=True)
            ours.append(stored / seconds)
            mem.append(used / max(stored, 1))
            load_ours.append(loader_cpu / max(stored, 1) * 1e6)
            print(f"round {round_no}: baseline {base[-1]:,.0f} spans/s ({failures_base} failed requests, load "
                  f"{load_base[-1]:.2f} µs CPU per span); ours {ours[-1]:,.0f} spans/s stored "
                  f"({stored} of {total_spans} counted in Redis, {failures_ours} failed requests); "
                  f"{mem[-1]:.0f} bytes of Redis memory per span; CPU per span: server "
                  f"{server_cpu / stored * 1e6:.1f} µs, Redis {redis_cpu / stored * 1e6:.1f} µs, load "
                  f"{load_ours[-1]:.2f} µs", flush=True)
    finally:
        redis_server.stop()
    print()
    print(f"median baseline (parse only):  {statistics.median(base):>10,.0f} spans/s")
    print(f"median otel-sessions (stored): {statistics.median(ours):>10,.0f} spans/s "
          f"= {statistics.median(ours) / statistics.median(base):.1%} of baseline")
    print(f"median load generator CPU:     {statistics.median(load_ours):>10.2f} µs per span "
          f"({statistics.median(load_base):.2f} µs against the baseline)")
    print(f"median Redis memory per span:  {statistics.median(mem):>10.0f} bytes ({wire:.0f} on the wire)")


if __name__ == "__main__":
    main()
