"""The processor installs without the server dependencies (README "Install").

A fresh virtualenv gets the README's ``pip install .`` of this checkout (no extras, with its
dependencies from the machine's configured index and wheel cache), then a span goes through
``SessionSpanProcessor`` in that venv's Python, where ``grpc``, ``redis`` and ``aiohttp``
must not be importable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme import readme_section

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import importlib.util, json
from importlib.metadata import requires
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otel_sessions.processor
from otel_sessions.processor import SessionSpanProcessor, session

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SessionSpanProcessor())
provider.add_span_processor(SimpleSpanProcessor(memory))
with session("sess-installed", user_id="u-1"):
    provider.get_tracer("t").start_span("work").end()
(span,) = memory.get_finished_spans()
print(json.dumps({
    "attributes": dict(span.attributes),
    "importable": [m for m in ("grpc", "redis", "aiohttp", "google.protobuf")
                   if importlib.util.find_spec(m.split(".")[0]) is not None and importlib.util.find_spec(m)],
    "requires": [r for r in requires("otel-sessions") if "extra ==" not in r],
    "processor": otel_sessions.processor.__file__,
}))
"""


def _readme_command() -> list[str]:
    """The README's processor-only install from a clone: ``pip install .``."""
    section = readme_section("## Install")
    (line,) = [line for line in section.splitlines() if re.match(r"pip install \.(\s|$)", line)]
    return line.split("#")[0].split()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_processor_installs_and_runs_without_the_server_dependencies(tmp_path):
    command = _readme_command()
    assert command == ["pip", "install", "."]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("OTEL_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    installed = subprocess.run([str(python), "-m", *command, "-q"], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=180)
    assert installed.returncode == 0, installed.stderr[-3000:]
    run = subprocess.run([str(python), "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["attributes"]["session.id"] == "sess-installed" and report["attributes"]["user.id"] == "u-1"
    assert report["importable"] == []
    assert [re.split(r"[<>=!~ ;\[]", r)[0] for r in report["requires"]] == ["opentelemetry-sdk"]
    assert report["processor"].startswith(str(venv))  # the installed copy, not the checkout
