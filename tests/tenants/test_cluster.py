"""Tenants on a three-master Redis Cluster: two tenants write the same session ids and trace ids;
each lists, reads and deletes its own sessions only; the quota's bucket works there too."""

from __future__ import annotations

import json
import time

import grpc
import redis

from tests.store.test_cluster import cluster  # noqa: F401  (the three-master cluster fixture)
from tests.support import RunningService, http
from tests.tenants.helpers import (
    TENANTS,
    TOKENS,
    TRACE_GRPC,
    TRACE_HTTP,
    bearer,
    grpc_exporter,
    http_exporter,
    send_spans,
    write_tenants_file,
)
from tests.tenants.test_quota import EXPORT, _body

SPANS = {"team-a": 2, "team-b": 3}


def _get(service, path: str, tenant: str, scope: str = "read"):
    return http("GET", service.http_url + path, headers=bearer(TOKENS[tenant][scope]))


def test_two_tenants_on_a_cluster_write_list_and_delete_apart(cluster, tmp_path):  # noqa: F811
    path = write_tenants_file(tmp_path, quotas={"team-b": {"spans_per_second": 10}})
    with RunningService(cluster, redis_cluster="true", tenants=str(path)) as service:
        for tenant in TENANTS:
            token = TOKENS[tenant]["ingest"]
            for n in range(4):  # sessions over several slots and index shards
                send_spans(grpc_exporter(service, token), TRACE_GRPC + n, tenant, f"sess-{n}", SPANS[tenant],
                           **{"user.id": "u-1"})
            send_spans(http_exporter(service, token), TRACE_HTTP, tenant, "sess-http", 1)
            send_spans(grpc_exporter(service, token), TRACE_HTTP + 99, tenant, f"sess-only-{tenant}", 1)
        for tenant in TENANTS:
            status, body, _ = _get(service, "/v1/sessions?limit=100", tenant)
            assert status == 200
            listed = {s["id"]: s for s in body["data"]}
            assert set(listed) == {"sess-0", "sess-1", "sess-2", "sess-3", "sess-http", f"sess-only-{tenant}"}
            assert all(s["services"] == [f"svc-{tenant}"] for s in listed.values())
            assert all(listed[f"sess-{n}"]["span_count"] == SPANS[tenant] for n in range(4))
            status, body, _ = _get(service, "/v1/users/u-1/sessions", tenant)
            assert status == 200 and body["total"] == 4
            status, body, _ = _get(service, f"/v1/traces/{TRACE_GRPC:032x}", tenant)
            assert status == 200 and body["span_count"] == SPANS[tenant]
            other = TENANTS[1 - TENANTS.index(tenant)]
            assert _get(service, f"/v1/sessions/sess-only-{other}", tenant)[0] == 404
            trace = json.dumps(_get(service, f"/api/traces/{TRACE_GRPC:032x}", tenant)[1])
            assert f"svc-{tenant}" in trace and f"svc-{other}" not in trace

        # team-a deletes its sess-1; team-b's sess-1 stays, in the list too
        url = service.http_url + "/v1/sessions/sess-1"
        assert http("DELETE", url, headers=bearer(TOKENS["team-a"]["admin"]))[0] == 204
        assert http("DELETE", url, headers=bearer(TOKENS["team-a"]["read"]))[0] == 403
        assert _get(service, "/v1/sessions/sess-1", "team-a")[0] == 404
        assert _get(service, "/v1/sessions/sess-1", "team-b")[1]["span_count"] == SPANS["team-b"]
        assert {s["id"] for s in _get(service, "/v1/sessions", "team-a")[1]["data"]} == {
            "sess-0", "sess-2", "sess-3", "sess-http", "sess-only-team-a"}
        assert "sess-1" in {s["id"] for s in _get(service, "/v1/sessions", "team-b")[1]["data"]}
        assert http("DELETE", service.http_url + "/v1/sessions/sess-only-team-b",
                    headers=bearer(TOKENS["team-a"]["admin"]))[0] == 404

        # team-b's rate quota on the cluster: once the bucket is full again, a second request at once is
        # refused, retryable
        time.sleep(1.2)
        with grpc.insecure_channel(service.grpc_endpoint) as channel:
            export = channel.unary_unary(EXPORT)
            metadata = (("authorization", f"Bearer {TOKENS['team-b']['ingest']}"),)
            export(_body("sess-rate", 10), metadata=metadata, timeout=10)
            try:
                export(_body("sess-rate-2", 10), metadata=metadata, timeout=10)
                raise AssertionError("not refused")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "google.rpc.retryinfo-bin" in dict(exc.trailing_metadata())

    client = redis.RedisCluster.from_url(cluster)
    try:
        keys = [key.decode() for key in client.scan_iter(count=1000, target_nodes=redis.RedisCluster.ALL_NODES)]
    finally:
        client.close()
    assert keys and all(key.startswith(("ots:t.team-a:", "ots:t.team-b:", "ots:ready")) for key in keys), \
        [k for k in keys if not k.startswith("ots:t.")][:10]
