"""Real processes: two services with W3C propagation (scenario 4, app side), and zero-code
setup through a real ``opentelemetry-instrument`` run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_sessions.processor.attributes import SESSION_ID, SESSION_NAME, THREAD_ID, USER_ID

APPS = Path(__file__).parent / "apps"
BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHONPATH"))}
    env.update(extra)
    return env


@pytest.fixture()
def service_b() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(APPS / "service_b.py")], stdout=subprocess.PIPE, text=True, env=_env()
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_second_service_spans_carry_the_first_services_session(service_b: str) -> None:
    run = subprocess.run(
        [sys.executable, str(APPS / "service_a.py"), f"{service_b}/work"],
        capture_output=True, text=True, timeout=120, env=_env(), check=True,
    )
    a = json.loads(run.stdout.strip().splitlines()[-1])
    assert "session.id=" in a["baggage_header"]
    assert a["b_answer"] == {"session_id": a["session_id"]}
    with urllib.request.urlopen(f"{service_b}/spans", timeout=30) as response:
        spans = json.loads(response.read())
    assert sorted(s["name"] for s in spans) == ["GET /work", "b-work"]  # the WSGI server span and ours
    for span in spans:
        assert span["trace_id"] == a["trace_id"]  # one trace across both processes
        attrs = span["attributes"]
        assert attrs[SESSION_ID] == a["session_id"]
        assert attrs[THREAD_ID] == a["thread_id"]
        assert attrs[USER_ID] == "u-a"
        assert attrs[SESSION_NAME] == "Cross-service"


def _console_spans(stdout: str) -> list[dict]:
    """The JSON objects the SDK's console exporter printed, skipping other lines."""
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while (start := stdout.find("{", index)) != -1:
        try:
            obj, index = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(obj, dict) and "context" in obj:
            spans.append(obj)
    return spans


def _instrumented_run(**env: str) -> tuple[str, list[dict]]:
    run = subprocess.run(
        [
            str(BIN / "opentelemetry-instrument"),
            "--traces_exporter", "console",
            "--metrics_exporter", "none",
            "--logs_exporter", "none",
            sys.executable, str(APPS / "zero_code_app.py"),
        ],
        capture_output=True, text=True, timeout=120, env=_env(**env), check=True,
    )
    session_id = run.stdout.split("SESSION ", 1)[1].split()[0]
    return session_id, _console_spans(run.stdout)


def test_opentelemetry_instrument_adds_the_processor_when_enabled() -> None:
    session_id, spans = _instrumented_run(OTEL_SESSIONS_ENABLED="true", OTEL_SESSIONS_BAGGAGE="true")
    assert {s["name"] for s in spans} == {"zero-root", "zero-child"}
    for span in spans:
        assert span["attributes"][SESSION_ID] == session_id
        assert span["attributes"][USER_ID] == "u-zero"
        assert span["attributes"][SESSION_NAME] == "Zero code"


def test_opentelemetry_instrument_without_the_switch_adds_nothing() -> None:
    _, spans = _instrumented_run()
    assert {s["name"] for s in spans} == {"zero-root", "zero-child"}
    assert all(SESSION_ID not in span["attributes"] for span in spans)
