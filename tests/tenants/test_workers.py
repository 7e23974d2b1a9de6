"""``otel-sessions serve --workers 2 --tenants FILE`` as a user runs it: the rate quota is one
bucket in Redis for both workers, and ``/metrics`` (with the metrics token) sums the workers'
per-tenant counters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc

from otel_sessions.exporter.store.process_control import free_port
from tests.tenants.helpers import METRICS_TOKEN, TOKENS, write_tenants_file
from tests.tenants.test_quota import EXPORT, _body

SERVE = [sys.executable, "-m", "otel_sessions.exporter.cli", "serve"]
RATE, BATCH = 40, 20


def test_two_workers_share_a_tenants_rate_bucket(tmp_path):
    tenants = write_tenants_file(tmp_path, quotas={"team-a": {"spans_per_second": RATE}})
    grpc_port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [*SERVE, "--data-dir", str(tmp_path / "data"), "--workers", "2", "--grpc-listen", f"127.0.0.1:{grpc_port}",
         "--http-listen", f"127.0.0.1:{http_port}", "--tenants", str(tenants)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OTEL_SESSIONS_REDIS_URL": "", "OTEL_SESSIONS_INGEST_TOKEN": "",
             "OTEL_SESSIONS_QUERY_TOKEN": ""})
    try:
        for line in process.stdout:
            if line.strip().endswith("ready") or "error" in line:
                assert "error" not in line, line
                break
        time.sleep(1.5)  # the second worker binds too; the bucket is full
        metadata = (("authorization", f"Bearer {TOKENS['team-a']['ingest']}"),)
        bodies = [_body(f"sess-w{i}", BATCH) for i in range(8)]
        admitted = refused = 0
        started = time.monotonic()
        for body in bodies:  # a connection each: the kernel spreads them over the workers
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                try:
                    channel.unary_unary(EXPORT)(body, metadata=metadata, timeout=10)
                    admitted += 1
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
                    refused += 1
        elapsed = time.monotonic() - started
        # one bucket: a second's worth at once, then the rate (a bucket per worker would admit twice that)
        assert admitted * BATCH <= RATE + elapsed * RATE + BATCH, (admitted, elapsed)
        assert refused >= 1 and admitted >= 2
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/metrics",
                                         headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            metrics = response.read().decode()
        values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith("otel_sessions_tenant_")}
        assert values['otel_sessions_tenant_spans_stored_total{tenant="team-a"}'] == admitted * BATCH
        assert values['otel_sessions_tenant_spans_refused_total{quota="spans_per_second",tenant="team-a"}'] == \
            refused * BATCH
        assert values['otel_sessions_tenant_sessions{tenant="team-a"}'] == admitted
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10)
            raise AssertionError("/metrics answered without a token")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
