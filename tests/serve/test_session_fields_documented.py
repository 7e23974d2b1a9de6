"""Every field of a session answer is documented: README, docs/interface.md, OpenAPI (with
``previous_id``, set by ``session(..., previous_id=...)`` in the app)."""

from __future__ import annotations

import re
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_sessions.processor import SessionSpanProcessor, session
from tests.readme import readme_section
from tests.support import http

ROOT = Path(__file__).resolve().parents[2]


def _interface_session_section() -> str:
    text = (ROOT / "docs" / "interface.md").read_text()
    return text.split("### Session\n", 1)[1].split("\n### ", 1)[0]


def test_every_session_field_is_documented(service):
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=service.http_url + "/v1/traces")))
    with session("sess-next", user_id="u-1", previous_id="sess-before"):
        provider.get_tracer("t").start_span("turn").end()
    provider.shutdown()
    status, body, _ = http("GET", service.http_url + "/v1/sessions/sess-next")
    assert status == 200 and body["previous_id"] == "sess-before"

    readme = readme_section("## Looking up sessions")
    interface = _interface_session_section()
    _, openapi, _ = http("GET", service.http_url + "/openapi.json")
    schema = openapi["components"]["schemas"]["Session"]["properties"]
    for field in body:
        assert f"`{field}`" in readme, field
        assert f"`{field}`" in interface, field
        assert field in schema, field
    assert "follows on from" in schema["previous_id"]["description"]
    assert "follows on from" in interface.split("`previous_id`", 1)[1].split("\n", 1)[0]


def test_readme_shows_previous_id_in_running_code():
    blocks = re.findall(r"```python\n(.*?)```", readme_section("## In your app: the span processor"), flags=re.S)
    assert any(re.search(r"session\([^)]*previous_id=", block) for block in blocks)
