"""Content control on ingest: ``--redact-attributes`` (glob patterns of keys) and
``--redact-patterns`` (regexes inside string values) before anything is stored or forwarded:
the values never reach Redis (every key scanned, span chunks decompressed) nor a forward
destination (real OTLP receivers), and they are counted."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
import redis
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sessions.exporter.ingest.redaction import REDACTED, Redactor
from otel_sessions.exporter.serve.settings import Settings, SettingsError
from otel_sessions.exporter.store.codec import decode_chunks
from tests.conversation.builders import Raw, Spans, any_value, attributes, genai_message
from tests.conversation.live import get, post, stamp
from tests.support import RunningService, all_spans, metric, wait_until

EMAIL = "alice.smith@example.com"
CARD = "4111 1111 1111 1111"
PROMPT = "my very private prompt"
KEYS = ["gen_ai.input.messages,llm.input_messages.*", "secret.*"]
PATTERNS = [r"[\w.+-]+@[\w-]+\.[\w.]+", r"\b(?:\d[ -]?){13,16}\b"]
SECRETS = (EMAIL, CARD, PROMPT, "4111111111111111", "hunter2")


def _request() -> ExportTraceServiceRequest:
    spans = Spans(resource={"service.name": "app", "owner.email": EMAIL})
    spans.scope.scope.attributes.extend(attributes({"secret.scope": "hunter2"}))
    root = spans.add(1, 0, 1000, name="chat", events=[("exception", {"exception.message": f"no card {CARD}"})],
                     gen_ai__input__messages=[genai_message("user", PROMPT)],
                     gen_ai__output__messages=[genai_message("assistant", f"Mail {EMAIL} to confirm")],
                     llm__input_messages__0__message__content=PROMPT,
                     secret__token="hunter2", notes=Raw(["fine", f"card: {CARD}", {"nested": EMAIL}]),
                     structured=Raw({"secret.inner": "hunter2", "ok": "kept"}), count=3)
    link = root.links.add(trace_id=bytes(16 * [1]), span_id=bytes(8 * [2]))
    link.attributes.extend(attributes({"contact": EMAIL}))
    stamp(spans.data, session__id="sess-private", user__id="u-1")
    return ExportTraceServiceRequest(resource_spans=spans.data.resource_spans)


def test_redactor_by_key_and_pattern():
    request = _request()
    redactor = Redactor(["gen_ai.input.messages", "llm.input_messages.*", "secret.*"], PATTERNS)
    changed = redactor.redact_traces(request)
    text = request.SerializeToString()
    for secret in SECRETS:
        assert secret.encode() not in text, secret
    span = all_spans(request)[0]
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert attrs["gen_ai.input.messages"].string_value == REDACTED
    assert attrs["llm.input_messages.0.message.content"].string_value == REDACTED
    assert attrs["secret.token"].string_value == REDACTED
    assert f"Mail {REDACTED} to confirm" in attrs["gen_ai.output.messages"].string_value
    assert [v.string_value for v in attrs["notes"].array_value.values[:2]] == ["fine", f"card: {REDACTED}"]
    assert {kv.key: kv.value.string_value for kv in attrs["structured"].kvlist_value.values} == {
        "secret.inner": REDACTED, "ok": "kept"}
    assert attrs["count"].int_value == 3 and attrs["session.id"].string_value == "sess-private"
    # resource, scope, span (3 keys, the output, 2 in notes, 1 in structured), event, link
    assert changed == 1 + 1 + 7 + 1 + 1
    assert redactor.redact_traces(request) == 0  # nothing left to change


def test_redactor_logs_bodies_and_nothing_configured():
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.CopyFrom(any_value({"content": f"write to {EMAIL}", "secret.key": "hunter2", "n": 1}))
    record.attributes.extend(attributes({"secret.x": "y", "plain": f"{CARD}"}))
    plain = request.resource_logs.add().scope_logs.add().log_records.add()
    plain.body.string_value = f"call me at {EMAIL}"
    assert Redactor(["secret.*"], PATTERNS).redact_logs(request) == 5
    assert not any(s.encode() in request.SerializeToString() for s in SECRETS)
    assert plain.body.string_value == f"call me at {REDACTED}"
    assert not Redactor() and Redactor(["x"]) and Redactor(patterns=["x"])


def test_settings():
    settings = Settings.resolve({"redact_attributes": ["a.*, b", "c"], "redact_patterns": [r"\d{3,4}"]}, env={})
    assert settings.redact_attributes == ("a.*", "b", "c") and settings.redact_patterns == (r"\d{3,4}",)
    from_env = Settings.resolve({}, env={"OTEL_SESSIONS_REDACT_ATTRIBUTES": "x,y.*",
                                         "OTEL_SESSIONS_REDACT_PATTERNS": "\\d{13,16}\nfoo,bar\n"})
    assert from_env.redact_attributes == ("x", "y.*") and from_env.redact_patterns == (r"\d{13,16}", "foo,bar")
    assert Settings.resolve({}, env={}).redactor() is None
    with pytest.raises(SettingsError, match="--redact-patterns / OTEL_SESSIONS_REDACT_PATTERNS: not a regular"):
        Settings.resolve({"redact_patterns": ["(unclosed"]}, env={})
    with pytest.raises(SettingsError, match="--redact-patterns / OTEL_SESSIONS_REDACT_PATTERNS: .* empty string"):
        Settings.resolve({"redact_patterns": ["a*"]}, env={})


def test_serve_refuses_a_bad_pattern_at_start_up(tmp_path):
    run = subprocess.run([sys.executable, "-m", "otel_sessions.exporter.cli", "serve", "--redact-patterns", "[a-",
                          "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "--redact-patterns / OTEL_SESSIONS_REDACT_PATTERNS: not a regular expression: '[a-'" in run.stdout


def _stored_bytes(redis_url: str) -> list[bytes]:
    """Every key and value in Redis; span chunks decompressed as well."""
    client = redis.Redis.from_url(redis_url)
    out: list[bytes] = []
    try:
        for key in client.scan_iter(count=1000):
            out.append(key)
            kind = client.type(key).decode()
            if kind == "string":
                values = [client.get(key)]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "hash":
                values = [b for pair in client.hgetall(key).items() for b in pair]
            elif kind == "zset":
                values = [member for member, _score in client.zrange(key, 0, -1, withscores=True)]
            elif kind == "set":
                values = list(client.smembers(key))
            else:
                raise AssertionError(f"unexpected key type {kind} of {key!r}")
            for value in values:
                out.append(value)
                with contextlib.suppress(Exception):  # values that are not chunks
                    out.append(decode_chunks([value]))
    finally:
        client.close()
    return out


def test_redacted_values_never_reach_redis_or_a_forward_destination(redis_url, grpc_downstream, http_downstream):
    before = metric("otel_sessions_redacted_values_total")
    with RunningService(redis_url, redact_attributes=KEYS, redact_patterns=PATTERNS,
                        forward=[grpc_downstream.url, http_downstream.url]) as service:
        post(service, _as_traces(_request()))
        # a span whose trace names no session yet is parked by trace id: redacted too
        orphan = Spans()
        orphan.add(5, 0, 10, trace=bytes(15) + b"\x09", name="orphan", secret__a="hunter2", text=f"to {EMAIL}")
        post(service, orphan.data)
        messages = get(service, "/v1/sessions/sess-private/messages")["data"]
        assert [m["content"][0]["text"] for m in messages] == [REDACTED, f"Mail {REDACTED} to confirm"]
        assert messages[0]["redacted"] is True and messages[0]["raw"] is False  # replaced whole: not an error
        for downstream in (grpc_downstream, http_downstream):
            spans = downstream.wait_for_spans(2)
            forwarded = b"".join(r.SerializeToString() for r in downstream.requests)
            assert REDACTED.encode() in forwarded
            for secret in SECRETS:
                assert secret.encode() not in forwarded, (downstream, secret)
            assert len(spans) == 2
        stored = _stored_bytes(redis_url)
        assert any(f"Mail {REDACTED} to confirm".encode() in value for value in stored)  # chunks were read
        for secret in SECRETS:
            assert not any(secret.encode() in value for value in stored), secret
        assert wait_until(lambda: metric("otel_sessions_redacted_values_total") - before == 11 + 2,
                          message="redacted counter")
        metrics = get_text(service, "/metrics")
        assert "otel_sessions_redacted_values_total" in metrics


def _as_traces(request: ExportTraceServiceRequest):
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    return TracesData(resource_spans=request.resource_spans)


def get_text(service, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(service.http_url + path, timeout=10) as response:
        return response.read().decode()


def test_without_redaction_the_request_is_forwarded_as_received(redis_url, grpc_downstream):
    with RunningService(redis_url, forward=[grpc_downstream.url]) as service:
        assert service.service.ingestor.redactor is None
        post(service, _as_traces(_request()))
        grpc_downstream.wait_for_spans(1)
        assert EMAIL.encode() in b"".join(r.SerializeToString() for r in grpc_downstream.requests)


def test_a_redacted_answer_is_still_one_message_per_call(redis_url):
    """Each call's answer redacted whole reads as '[redacted]': still one message per model call
    (not taken for the answer before it), flagged ``redacted``, not ``raw``; a redacted input
    (the re-sent history) is one message."""
    from tests.conversation import conversation as c
    from tests.conversation.live import get, post, stamp

    with RunningService(redis_url, redact_attributes=["gen_ai.input.messages", "gen_ai.output.messages"]) as service:
        post(service, stamp(c.genai_json().data, session__id="sess-redacted-answers"))
        messages = get(service, "/v1/sessions/sess-redacted-answers/messages")["data"]
        assert [(m["role"], m["redacted"]) for m in messages] == [
            ("system", False), ("user", True), ("assistant", True), ("assistant", True), ("assistant", True)]
        assert all(not m["raw"] and m["content"] == [{"type": "text", "text": REDACTED}] for m in messages[1:])
        figures = get(service, "/v1/sessions/sess-redacted-answers")["conversation"]
        assert (figures["user_messages"], figures["assistant_messages"]) == (1, 3)
