"""Session logs on Redis Cluster: two receivers writing log requests (and the spans whose traces
the records join) concurrently into a three-master cluster store and answer what one receiver
on one Redis does: the same sessions, log counts and records, joined across receivers."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

from tests.logs.helpers import LOGS_EXPORT, grpc_log_exporter
from tests.logs.test_joining import TwoServices
from tests.store.test_cluster import cluster  # noqa: F401 - the three-master cluster fixture
from tests.support import RunningService

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from logs_ingest import export_requests  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _send(endpoint: str, bodies: list[bytes]) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        export = channel.unary_unary(LOGS_EXPORT)
        for body in bodies:
            export(body, timeout=30)


def _logs(service, session_id: str) -> list:
    with urllib.request.urlopen(f"{service.http_url}/v1/sessions/{session_id}/logs?limit=10000") as response:
        return [(r["time_unix_nano"], r["body"], r["span_id"]) for r in json.loads(response.read())["data"]]


def _snapshot(service) -> dict:
    ids, _total = service.call(service.store.recent_session_ids(limit=500))
    return {sid: (service.session(sid).log_count, _logs(service, sid)) for sid in ids}


def test_two_receivers_on_a_cluster_store_what_one_receiver_on_one_redis_does(cluster, redis_url):  # noqa: F811
    bodies = list(export_requests(6, records_per_request=200, sessions_per_request=10, session_pool=30))
    joins = [TwoServices(f"sess-cluster-{i}") for i in range(3)]
    with RunningService(redis_url) as single:
        _send(single.grpc_endpoint, bodies + bodies[:2])  # a retry of two requests
        for two in joins:
            grpc_log_exporter(single).export(two.logs)  # before their trace names the session
            OTLPSpanExporter(endpoint=single.grpc_endpoint, insecure=True).export(two.a_spans.get_finished_spans())
        expected = _snapshot(single)
    assert len(expected) > 20 and all(f"sess-cluster-{i}" in expected for i in range(3))
    assert all(count == 2 for count, _records in (expected[f"sess-cluster-{i}"] for i in range(3)))
    with RunningService(cluster, redis_cluster="true") as first, \
            RunningService(cluster, redis_cluster="true") as second:
        senders = [threading.Thread(target=_send, args=(first.grpc_endpoint, bodies[0::2] + bodies[:2])),
                   threading.Thread(target=_send, args=(second.grpc_endpoint, bodies[1::2]))]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(60)
        for two in joins:  # the records reach one receiver, the spans the other
            grpc_log_exporter(second).export(two.logs)
            OTLPSpanExporter(endpoint=first.grpc_endpoint, insecure=True).export(two.a_spans.get_finished_spans())
        assert _snapshot(first) == expected
        assert _snapshot(second) == expected
        assert first.call(first.store.delete_session("sess-cluster-0"))
        assert first.session("sess-cluster-0") is None
