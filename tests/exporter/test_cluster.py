"""Redis Cluster: two receivers writing concurrently into a three-master cluster started by the
test produce the same sessions and counts as one receiver into one Redis; every read path answers
the same on both."""

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


def _read(url: str) -> object:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body[:1] in (b"{", b"[") else body


_VOLATILE = {"last_activity", "lastActivityUnixNano", "status"}


def _stable(value):
    """An answer without the fields that move with the clock."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _answers(service: RunningService, session_id: str, user_id: str, thread_id: str, trace_id: str) -> dict:
    """What every read path answers: REST, SessionService, the Jaeger API."""
    from google.protobuf.json_format import MessageToDict

    from otel_sessions.v1 import session_service_pb2 as pb
    from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc

    base = service.http_url
    out = {
        "list": _read(f"{base}/v1/sessions?limit=500"),
        "by_cost": _read(f"{base}/v1/sessions?sort_by=cost&limit=7&offset=3"),
        "user": _read(f"{base}/v1/users/{user_id}/sessions"),
        "thread": _read(f"{base}/v1/threads/{thread_id}"),
        "detail": _read(f"{base}/v1/sessions/{session_id}"),
        "spans": _read(f"{base}/v1/sessions/{session_id}/spans"),
        "jaeger_services": _read(f"{base}/api/services"),
        "jaeger_operations": _read(f"{base}/api/services/support-bot/operations"),
        "jaeger_search": _read(f'{base}/api/traces?tags=%7B%22session.id%22%3A%22{session_id}%22%7D&limit=50'),
        "jaeger_trace": _read(f"{base}/api/traces/{trace_id}"),
        "jaeger_session": _read(f"{base}/api/sessions/{session_id}/trace"),
    }
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        stub = pb_grpc.SessionServiceStub(channel)
        out["grpc_list"] = MessageToDict(stub.ListSessions(pb.ListSessionsRequest(limit=500)))
        out["grpc_get"] = MessageToDict(stub.GetSession(pb.GetSessionRequest(session_id=session_id)))
        out["grpc_spans"] = len(stub.GetSessionSpans(pb.GetSessionRequest(session_id=session_id)).resource_spans)
    return _stable(out)


def _jaeger_listed(service: RunningService) -> bool:
    return "support-bot" in _read(f"{service.http_url}/api/services")["data"]


def _tail_receives(service: RunningService, session_id: str, body: bytes) -> bool:
    """A live tail (SSE) of ``session_id`` gets the spans of ``body`` sent after it started."""
    import urllib.request

    request = urllib.request.Request(f"{service.http_url}/v1/sessions/{session_id}/tail")
    with urllib.request.urlopen(request, timeout=30) as stream:
        assert stream.readline().startswith(b": tailing")  # subscribed: nothing sent from now on is missed
        _send(service.grpc_endpoint, [body])
        for line in stream:
            if line.startswith(b"data: "):
                return b"spanId" in line
    return False


def test_every_read_answers_the_same_on_a_cluster_as_on_one_redis(cluster, redis_url):
    """REST, SessionService, the Jaeger API and a live tail on a three-master cluster answer
    exactly what they answer on one Redis holding the same spans."""
    import json

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    bodies = list(export_requests(4, spans_per_request=64, sessions_per_request=6, session_pool=12, seed=9))
    first = ExportTraceServiceRequest.FromString(bodies[0])
    span = first.resource_spans[0].scope_spans[0].spans[0]
    attrs = {kv.key: kv.value.string_value for kv in span.attributes}
    session_id, trace_id = attrs["session.id"], span.trace_id.hex()
    summary_of = {}

    answers = {}
    for name, url, cluster_mode in (("cluster", cluster, "true"), ("one", redis_url, "false")):
        with RunningService(url, redis_cluster=cluster_mode) as service:
            _send(service.grpc_endpoint, bodies)
            deadline = time.monotonic() + 20
            while not _jaeger_listed(service):  # the Jaeger index is written in the background
                assert time.monotonic() < deadline
                time.sleep(0.1)
            summary_of[name] = service.session(session_id)
            answers[name] = _answers(service, session_id, summary_of[name].user_id, summary_of[name].thread_id,
                                     trace_id)
            more = list(export_requests(1, spans_per_request=8, sessions_per_request=1, session_pool=1, seed=11))[0]
            target = ExportTraceServiceRequest.FromString(more)
            tail_session = {kv.key: kv.value.string_value
                            for kv in target.resource_spans[0].scope_spans[0].spans[0].attributes}["session.id"]
            _send(service.grpc_endpoint, [more])
            for rs in target.resource_spans:  # the same session's spans again, with new span ids
                for ss in rs.scope_spans:
                    for i, span_record in enumerate(ss.spans):
                        span_record.span_id = bytes([0xAB, i]) + span_record.span_id[2:]
            assert _tail_receives(service, tail_session, target.SerializeToString())
            assert service.call(service.store.delete_session(session_id))
            assert service.session(session_id) is None

    assert answers["cluster"]["list"]["total"] > 0
    for key in answers["one"]:
        assert json.dumps(answers["cluster"][key], sort_keys=True) == json.dumps(answers["one"][key], sort_keys=True), key


def test_a_long_session_on_a_cluster(cluster):
    """The digest buckets a long session spreads into are named by the script from the
    session's hash tag: on a cluster they stay in its slot, and retries still count once."""
    import random

    from tests.store.test_long_session import ids, request

    rng = random.Random(3)
    spans = ids(rng, 1500, 150)
    with RunningService(cluster, redis_cluster="true") as service:
        for first in range(0, 1500, 100):
            service.call(service.service.ingestor.export(request("sess-long-cluster", spans[first:first + 100])))
        service.call(service.service.ingestor.export(request("sess-long-cluster", spans[200:300])))
        summary = service.session("sess-long-cluster")
        assert (summary.span_count, summary.trace_count) == (1500, 150)
        assert service.call(service.store.delete_session("sess-long-cluster"))
