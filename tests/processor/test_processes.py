"""Real processes: two services with W3C propagation (app side), and zero-code
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


def _console_objects(stdout: str) -> list[dict]:
    """The JSON objects the SDK's console exporters printed, skipping other lines."""
    decoder = json.JSONDecoder()
    objects, index = [], 0
    while (start := stdout.find("{", index)) != -1:
        try:
            obj, index = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(obj, dict):
            objects.append(obj)
    return objects


def _instrumented_run(**env: str) -> tuple[str, list[dict], dict[str, dict]]:
    """Session id, spans, and log record attributes by body of a real zero-code run, with the
    SDK's logging auto-instrumentation on (stdlib logging into the configurator's LoggerProvider)."""
    run = subprocess.run(
        [
            str(BIN / "opentelemetry-instrument"),
            "--traces_exporter", "console",
            "--metrics_exporter", "none",
            "--logs_exporter", "console",
            sys.executable, str(APPS / "zero_code_app.py"),
        ],
        capture_output=True, text=True, timeout=120, check=True,
        env=_env(OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true", **env),
    )
    session_id = run.stdout.split("SESSION ", 1)[1].split()[0]
    objects = _console_objects(run.stdout)
    spans = [obj for obj in objects if "context" in obj]
    logs = {obj["body"]: obj.get("attributes") or {} for obj in objects if "severity_number" in obj}
    return session_id, spans, logs


def test_opentelemetry_instrument_adds_the_processors_when_enabled() -> None:
    session_id, spans, logs = _instrumented_run(OTEL_SESSIONS_ENABLED="true", OTEL_SESSIONS_BAGGAGE="true")
    assert {s["name"] for s in spans} == {"zero-root", "zero-child"}
    for span in spans:
        assert span["attributes"][SESSION_ID] == session_id
        assert span["attributes"][USER_ID] == "u-zero"
        assert span["attributes"][SESSION_NAME] == "Zero code"
    assert set(logs) == {"zero-outside", "zero-inside"}
    inside = logs["zero-inside"]
    assert (inside[SESSION_ID], inside[USER_ID], inside[SESSION_NAME]) == (session_id, "u-zero", "Zero code")
    assert inside[THREAD_ID] == spans[0]["attributes"][THREAD_ID]
    assert SESSION_ID not in logs["zero-outside"]


def test_opentelemetry_instrument_without_the_switch_adds_nothing() -> None:
    _, spans, logs = _instrumented_run()
    assert {s["name"] for s in spans} == {"zero-root", "zero-child"}
    assert all(SESSION_ID not in span["attributes"] for span in spans)
    assert set(logs) == {"zero-outside", "zero-inside"}
    assert all(SESSION_ID not in attrs for attrs in logs.values())


def test_zero_code_puts_the_log_processor_ahead_of_the_exporting_one() -> None:
    run = subprocess.run(
        [sys.executable, str(APPS / "log_order_app.py")], capture_output=True, text=True, timeout=120, env=_env()
    )
    assert run.returncode == 0, run.stderr
    (record,) = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert record["body"] == "inside"
    assert (record["attributes"][SESSION_ID], record["attributes"][USER_ID]) == ("sess-order", "u-order")
