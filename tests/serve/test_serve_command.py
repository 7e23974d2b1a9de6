"""``otel-sessions serve`` as a user runs it: embedded Redis, restart, settings errors."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

from tests.ingest.test_bad_input import InMemoryOne
from tests.support import open_store

SERVE = [sys.executable, "-m", "otel_sessions.exporter.cli", "serve"]


def _start(data_dir, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, dict[str, str]]:
    process = subprocess.Popen(
        [*SERVE, "--data-dir", str(data_dir), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OTEL_SESSIONS_REDIS_URL": "", **(env or {})},
    )
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if m := re.search(r"OTLP/gRPC on ([\d.]+:\d+)", line):
            seen["grpc"] = m.group(1)
        if m := re.search(r"OTLP/HTTP on (http://[\d.]+:\d+)", line):
            seen["http"] = m.group(1)
        if m := re.search(r"at (unix://\S+),", line):
            seen["redis"] = m.group(1)
        if m := re.search(r"spans read by the (.+)$", line):
            seen["reader"] = m.group(1)
        if "ready" in line and line.strip().endswith("ready"):
            return process, seen
    process.kill()
    raise AssertionError("serve did not become ready:\n" + "".join(lines))


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    return out


def _summary(redis_url: str, session_id: str):
    async def read():
        store = open_store(redis_url)
        try:
            return await store.get_session(session_id)
        finally:
            await store.close()

    return asyncio.run(read())


def _native_gauge(http_url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(http_url + "/metrics") as response:
        return re.search(r"^otel_sessions_ingest_native (\S+)$", response.read().decode(), re.M).group(1)


def test_embedded_redis_keeps_sessions_across_restarts(tmp_path):
    from otel_sessions.exporter.ingest.native import scanner_problem

    process, seen = _start(tmp_path, env={"OTEL_SESSIONS_NATIVE": ""})
    try:
        assert seen["redis"].startswith("unix://" + str(tmp_path))
        GrpcExporter(endpoint=seen["grpc"], insecure=True).export(InMemoryOne("sess-durable").spans)
        if scanner_problem() is None:  # built: the default reader, said at start and in /metrics
            assert seen["reader"] == "native scanner" and _native_gauge(seen["http"]) == "1.0"
    finally:
        out = _stop(process)
    assert "embedded redis stopped" in out
    assert (tmp_path / "redis").exists()

    process, seen = _start(tmp_path, env={"OTEL_SESSIONS_NATIVE": "0"})  # the other reader, same store
    try:
        assert seen["reader"] == "pure-Python path (OTEL_SESSIONS_NATIVE=0)"
        assert _native_gauge(seen["http"]) == "0.0"
        summary = _summary(seen["redis"], "sess-durable")
        assert summary is not None and summary.span_count == 1
        GrpcExporter(endpoint=seen["grpc"], insecure=True).export(InMemoryOne("sess-durable").spans)
        assert _summary(seen["redis"], "sess-durable").span_count == 2
    finally:
        _stop(process)


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--retention", "forever"], {}, "--retention / OTEL_SESSIONS_RETENTION"),
    ([], {"OTEL_SESSIONS_REDIS_TIMEOUT": "0s"}, "--redis-timeout / OTEL_SESSIONS_REDIS_TIMEOUT"),
    ([], {"OTEL_SESSIONS_IDLE_AFTER": "-5m"}, "--idle-after / OTEL_SESSIONS_IDLE_AFTER"),
    (["--grpc-listen", "localhost"], {}, "--grpc-listen / OTEL_SESSIONS_GRPC_LISTEN"),
    (["--redis-url", "http://x"], {}, "--redis-url / OTEL_SESSIONS_REDIS_URL"),
    (["--forward", "ftp://x"], {}, "--forward / OTEL_SESSIONS_FORWARD"),
    (["--idle-after", "1h", "--abandon-after", "5m"], {}, "--abandon-after / OTEL_SESSIONS_ABANDON_AFTER"),
    (["--workers", "many"], {}, "--workers / OTEL_SESSIONS_WORKERS"),
    ([], {"OTEL_SESSIONS_WORKERS": "0"}, "--workers / OTEL_SESSIONS_WORKERS"),
])
def test_bad_settings_stop_start_up_naming_flag_and_env(args, env, named):
    result = subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=30,
                            env={**os.environ, **env})
    assert result.returncode == 2
    assert named in result.stdout


def test_workers_auto_is_one_per_usable_core_with_fixed_ports_else_one(monkeypatch):
    from otel_sessions.exporter.serve import settings as settings_module
    from otel_sessions.exporter.serve.settings import Settings

    monkeypatch.setattr(settings_module.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert Settings.resolve({}, env={}).workers == 2  # the default: auto
    assert Settings.resolve({"workers": "auto"}, env={}).workers == 2
    assert Settings.resolve({"grpc_listen": "127.0.0.1:0"}, env={}).workers == 1
    assert Settings.resolve({}, env={"OTEL_SESSIONS_HTTP_LISTEN": "127.0.0.1:0"}).workers == 1
    assert Settings.resolve({"workers": "3", "grpc_listen": "127.0.0.1:0"}, env={}).workers == 3  # refused later
    monkeypatch.setattr(settings_module.os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)
    assert Settings.resolve({}, env={}).workers == settings_module.AUTO_WORKERS_MAX


def test_redis_password_is_not_printed(tmp_path):
    result = subprocess.run([*SERVE, "--redis-url", "redis://:hunter2@127.0.0.1:1/0", "--grpc-listen",
                             "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "hunter2" not in result.stdout + result.stderr
    assert "cannot reach Redis" in result.stdout


def test_help_lists_every_env_var():
    from otel_sessions.exporter.serve.settings import OPTIONS

    out = subprocess.run([*SERVE, "--help"], capture_output=True, text=True, timeout=30).stdout
    for option in OPTIONS:
        assert option.flag in out and option.env in out


def test_two_workers_share_the_ports(tmp_path):
    import urllib.request

    from otel_sessions.exporter.store.process_control import free_port

    grpc_port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [*SERVE, "--data-dir", str(tmp_path), "--workers", "2", "--grpc-listen", f"127.0.0.1:{grpc_port}",
         "--http-listen", f"127.0.0.1:{http_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OTEL_SESSIONS_REDIS_URL": ""})
    try:
        redis_url = None
        for line in process.stdout:
            if m := re.search(r"at (unix://\S+),", line):
                redis_url = m.group(1)
            if line.strip().endswith("ready"):
                break
        time.sleep(1.0)  # the second worker binds too
        for i in range(8):  # a connection each: the kernel spreads them over the workers
            GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True).export(InMemoryOne(f"sess-w{i}").spans)
        for i in range(8):
            assert _summary(redis_url, f"sess-w{i}").span_count == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics") as response:
            metrics = response.read().decode()
        stored = [x for x in metrics.splitlines() if x.startswith("otel_sessions_spans_stored_total ")]
        assert float(stored[0].split()[1]) == 8.0  # the workers' counters, summed
        # a second serve on the same ports (another data folder) must not join them through
        # SO_REUSEPORT: requests would then reach either store
        second = subprocess.run(
            [*SERVE, "--data-dir", str(tmp_path / "other"), "--workers", "2", "--grpc-listen",
             f"127.0.0.1:{grpc_port}", "--http-listen", f"127.0.0.1:{http_port}"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "OTEL_SESSIONS_REDIS_URL": ""})
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"error: cannot listen on 127.0.0.1:{grpc_port} for gRPC (--grpc-listen)" in second.stdout + second.stderr
        assert "another otel-sessions serve" in second.stdout + second.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
