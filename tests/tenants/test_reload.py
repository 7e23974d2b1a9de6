"""SIGHUP reads the tenants file again: ``serve --workers 2 --tenants FILE`` as a user runs it,
a token rotated without a restart (the old one refused at once, the new one taken by both
workers), and a broken file leaving the tenants in use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from otel_sessions.exporter.store.process_control import free_port
from otel_sessions.exporter.tenants import token_sha256

SERVE = [sys.executable, "-m", "otel_sessions.exporter.cli", "serve"]


def _file(path, token: str) -> None:
    path.write_text(f"tenants:\n  - name: team-a\n    tokens:\n      - sha256: {token_sha256(token)}\n"
                    "        scopes: [read]\n")


def _status(http_port: int, token: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/sessions",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sighup_rotates_tokens_in_every_worker_and_keeps_them_on_a_broken_file(tmp_path):
    path = tmp_path / "tenants.yaml"
    _file(path, "old-token-3f2a9c1e")
    grpc_port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [*SERVE, "--data-dir", str(tmp_path / "data"), "--workers", "2", "--grpc-listen", f"127.0.0.1:{grpc_port}",
         "--http-listen", f"127.0.0.1:{http_port}", "--tenants", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OTEL_SESSIONS_REDIS_URL": "", "OTEL_SESSIONS_INGEST_TOKEN": "",
             "OTEL_SESSIONS_QUERY_TOKEN": ""})
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.strip().endswith("ready") or "error" in line:
                assert "error" not in line, line
                break
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        time.sleep(1.5)  # the second worker binds too
        assert _status(http_port, "old-token-3f2a9c1e") == 200

        def reloaded(count: int, text: str) -> None:
            deadline = time.monotonic() + 20
            while sum(text in line for line in lines) < count:
                assert time.monotonic() < deadline, "".join(lines[-20:])
                time.sleep(0.05)

        _file(path, "new-token-8b7d0e44")
        process.send_signal(signal.SIGHUP)
        reloaded(2, "tenants reloaded from")  # each worker
        for _ in range(8):  # connections spread over both workers
            assert _status(http_port, "old-token-3f2a9c1e") == 401
            assert _status(http_port, "new-token-8b7d0e44") == 200

        path.write_text("tenants: [")  # broken: the tenants in use stay
        process.send_signal(signal.SIGHUP)
        reloaded(2, "was not reloaded")
        for _ in range(4):
            assert _status(http_port, "new-token-8b7d0e44") == 200
        assert all("new-token-8b7d0e44" not in line and "old-token-3f2a9c1e" not in line for line in lines)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_a_reloaded_quota_applies_from_the_next_request(redis_url, tmp_path):
    """A built tenant's quota is replaced on reload: lifted, its requests pass at once."""
    from tests.support import RunningService
    from tests.tenants.helpers import TOKENS, write_tenants_file
    from tests.tenants.test_quota import _body, _grpc

    path = write_tenants_file(tmp_path, quotas={"team-a": {"max_sessions": 1}})
    with RunningService(redis_url, tenants=str(path)) as service:
        token = TOKENS["team-a"]["ingest"]
        assert _grpc(service, _body("sess-reload-1", 2), token) is None
        refused = _grpc(service, _body("sess-reload-2", 2), token)
        assert refused is not None and refused.code().name == "RESOURCE_EXHAUSTED"
        write_tenants_file(tmp_path)  # the same tenants and tokens, no quota

        async def reload() -> bool:
            return service.service.reload_tenants()

        assert service.call(reload()) is True
        assert _grpc(service, _body("sess-reload-2", 2), token) is None
