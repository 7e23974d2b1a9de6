"""``otel-sessions --version`` and the version in ``serve``'s first line, from package metadata."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from importlib.metadata import version

from tests.support import LineReader

CLI = [sys.executable, "-m", "otel_sessions.exporter.cli"]


def test_version_option():
    result = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == f"otel-sessions {version('otel-sessions')}\n"


def test_serve_says_its_version_first(redis_url):
    process = subprocess.Popen([*CLI, "serve", "--redis-url", redis_url, "--grpc-listen", "127.0.0.1:0",
                                "--http-listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")})
    try:
        reader = LineReader(process)
        reader.wait_for(lambda line: line.endswith("ready"))
        assert reader.lines[0].startswith(f"otel-sessions: otel-sessions {version('otel-sessions')} starting")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
