"""The checked-in SessionService code is what proto/generate.sh (pinned grpcio-tools) writes."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = ("session_service_pb2.py", "session_service_pb2.pyi", "session_service_pb2_grpc.py")


def _pinned() -> str:
    text = (ROOT / "proto" / "generate.sh").read_text()
    return text.split('GRPCIO_TOOLS_VERSION="', 1)[1].split('"', 1)[0]


def test_regeneration_gives_no_diff(tmp_path):
    try:
        installed = version("grpcio-tools")
    except PackageNotFoundError:
        pytest.skip("grpcio-tools is not installed (it is in the test extra)")
    if installed != _pinned():
        pytest.skip(f"grpcio-tools {installed} installed, generate.sh pins {_pinned()}")
    result = subprocess.run(["bash", str(ROOT / "proto" / "generate.sh"), str(tmp_path)],
                            env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in FILES:
        fresh = (tmp_path / "otel_sessions" / "v1" / name).read_text()
        checked_in = (ROOT / "exporter" / "otel_sessions" / "v1" / name).read_text()
        assert fresh == checked_in, f"exporter/otel_sessions/v1/{name} is stale: run bash proto/generate.sh"


def test_test_extra_pins_the_generator():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"grpcio-tools=={_pinned()}"' in pyproject
