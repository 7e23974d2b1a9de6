"""Acceptance 10 (scale-out): two receivers writing concurrently into a three-master Redis
Cluster started by the test produce the same sessions and counts as one receiver into one Redis."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis, free_port
from tests.support import RunningService

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from workload import export_requests  # noqa: E402

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture()
def cluster(tmp_path):
    nodes: list[EmbeddedRedis] = []
    try:
        for i in range(3):
            nodes.append(EmbeddedRedis(
                tmp_path / f"node{i}", port=None, persistent=False,
                extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-port", str(free_port()),  # the bus, on a free port too
                            "--cluster-node-timeout", "2000"]).start())
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
             "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stdout + created.stderr
        deadline = time.monotonic() + 30
        while "cluster_state:ok" not in subprocess.run(
                ["redis-cli", "-p", str(nodes[0].port), "cluster", "info"], capture_output=True, text=True).stdout:
            assert time.monotonic() < deadline, "cluster did not become ok"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{nodes[0].port}/0"
    finally:
        for node in nodes:
            node.stop()


def _send(endpoint: str, bodies: list[bytes]) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        export = channel.unary_unary(EXPORT)
        for body in bodies:
            export(body, timeout=30)


def _snapshot(service: RunningService) -> dict:
    ids, total = service.call(service.store.recent_session_ids(limit=500))
    out = {}
    for sid in ids:
        s = service.session(sid, with_traces=True)
        out[sid] = (s.span_count, s.trace_count, s.error_count, s.input_tokens, s.output_tokens,
                    round(s.cost_usd, 9), s.user_id, s.thread_id, s.name, s.status, tuple(s.models),
                    tuple((t.trace_id, t.span_count, t.root_name) for t in s.traces))
    return {"total": total, "sessions": out}


def test_two_receivers_on_a_cluster_equal_one_receiver_on_one_redis(cluster, redis_url):
    bodies = list(export_requests(8, spans_per_request=128, sessions_per_request=10, session_pool=40, seed=5))
    # every request twice (a retry), spread over both receivers
    with RunningService(cluster, redis_cluster="true") as first, \
            RunningService(cluster, redis_cluster="true") as second:
        senders = [threading.Thread(target=_send, args=(first.grpc_endpoint, bodies)),
                   threading.Thread(target=_send, args=(second.grpc_endpoint, bodies[::-1]))]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(120)
        on_cluster = _snapshot(first)
        assert _snapshot(second) == on_cluster

    with RunningService(redis_url) as single:
        _send(single.grpc_endpoint, bodies)
        on_one_redis = _snapshot(single)

    assert on_cluster["total"] == on_one_redis["total"] > 0
    assert sum(v[0] for v in on_cluster["sessions"].values()) == 8 * 128
    assert on_cluster == on_one_redis
