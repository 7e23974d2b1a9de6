"""SessionSpanProcessor on real spans: first value wins, aliases, baggage, never raises."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sessions.processor import SessionSpanProcessor, current_session, session
from otel_sessions.processor import processor as processor_module
from otel_sessions.processor.attributes import (
    BAGGAGE_LANGFUSE_SESSION_ID,
    BAGGAGE_LANGFUSE_USER_ID,
    SESSION_ID,
    SESSION_NAME,
    THREAD_ID,
    USER_ID,
)

from .conftest import Traced, make_traced


def test_first_value_wins_over_the_session(traced: Traced) -> None:
    with session("s", thread_id="t", user_id="u"):
        traced.tracer.start_span("own", attributes={SESSION_ID: "span-own", USER_ID: "span-user"}).end()
        with traced.tracer.start_as_current_span("later") as span:
            span.set_attribute(USER_ID, "set-later")  # the app's own later write is kept
    assert traced.attrs("own") == {SESSION_ID: "span-own", USER_ID: "span-user", THREAD_ID: "t"}
    assert traced.attrs("later")[USER_ID] == "set-later"


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("langfuse.session.id", SESSION_ID),
        ("agentmark.session_id", SESSION_ID),
        ("traceloop.association.properties.session_id", SESSION_ID),
        ("ai.telemetry.metadata.sessionId", SESSION_ID),
        ("mlflow.trace.session", SESSION_ID),
        ("@agentuity/threadId", THREAD_ID),
        ("traceloop.association.properties.conversation_id", THREAD_ID),
        ("langsmith.metadata.thread_id", THREAD_ID),
        ("langfuse.user.id", USER_ID),
        ("agentmark.user_id", USER_ID),
        ("traceloop.association.properties.user_id", USER_ID),
        ("ai.telemetry.metadata.userId", USER_ID),
        ("mlflow.trace.user", USER_ID),
        ("enduser.id", USER_ID),
        ("agentmark.session_name", SESSION_NAME),
        ("langfuse.trace.name", SESSION_NAME),
    ],
)
def test_alias_is_normalised_and_kept(traced: Traced, alias: str, canonical: str) -> None:
    traced.tracer.start_span("aliased", attributes={alias: "from-alias"}).end()
    attrs = traced.attrs("aliased")
    assert attrs[alias] == "from-alias" and attrs[canonical] == "from-alias"


def test_alias_precedence_and_span_aliases_beat_the_session(traced: Traced) -> None:
    with session("ctx-session", user_id="ctx-user"):
        traced.tracer.start_span(
            "both",
            attributes={"mlflow.trace.session": "low", "langfuse.session.id": "high", "enduser.id": "eu"},
        ).end()
    attrs = traced.attrs("both")
    assert attrs[SESSION_ID] == "high" and attrs[USER_ID] == "eu"


def test_invalid_alias_values_are_skipped(traced: Traced) -> None:
    traced.tracer.start_span("bad", attributes={"langfuse.session.id": "", "agentmark.session_id": "ok"}).end()
    assert traced.attrs("bad")[SESSION_ID] == "ok"


def test_conversation_id_is_the_session_only_without_one(traced: Traced) -> None:
    traced.tracer.start_span("conv", attributes={THREAD_ID: "conv-1"}).end()
    with session("real-session"):
        traced.tracer.start_span("conv-in-session", attributes={THREAD_ID: "conv-2"}).end()
    assert traced.attrs("conv")[SESSION_ID] == "conv-1"
    assert traced.attrs("conv-in-session") == {SESSION_ID: "real-session", THREAD_ID: "conv-2"}


def test_normalize_off() -> None:
    t = make_traced(baggage=False, normalize=False)
    t.tracer.start_span("raw", attributes={"langfuse.session.id": "lf", THREAD_ID: "c"}).end()
    assert t.attrs("raw") == {"langfuse.session.id": "lf", THREAD_ID: "c"}


def test_normalize_off_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SESSIONS_NORMALIZE", "false")
    t = make_traced(baggage=False)
    t.tracer.start_span("raw", attributes={"enduser.id": "eu"}).end()
    assert USER_ID not in t.attrs("raw")


def _with_baggage(entries: dict[str, str]) -> object:
    ctx = None
    for key, value in entries.items():
        ctx = baggage.set_baggage(key, value, ctx)
    return otel_context.attach(ctx)


def test_baggage_is_read_when_enabled(traced_baggage: Traced) -> None:
    token = _with_baggage({SESSION_ID: "b-s", THREAD_ID: "b-t", USER_ID: "b-u", SESSION_NAME: "b-n", "other": "x"})
    try:
        traced_baggage.tracer.start_span("from-baggage").end()
        assert current_session().session_id == "b-s"
    finally:
        otel_context.detach(token)
    assert traced_baggage.attrs("from-baggage") == {SESSION_ID: "b-s", THREAD_ID: "b-t", USER_ID: "b-u", SESSION_NAME: "b-n"}


def test_langfuse_baggage_keys_are_read(traced_baggage: Traced) -> None:
    token = _with_baggage({BAGGAGE_LANGFUSE_SESSION_ID: "lf-s", BAGGAGE_LANGFUSE_USER_ID: "lf-u"})
    try:
        traced_baggage.tracer.start_span("langfuse").end()
    finally:
        otel_context.detach(token)
    assert traced_baggage.attrs("langfuse") == {SESSION_ID: "lf-s", USER_ID: "lf-u"}


def test_baggage_ignored_when_off(traced: Traced) -> None:
    token = _with_baggage({SESSION_ID: "b-s"})
    try:
        traced.tracer.start_span("no-baggage").end()
    finally:
        otel_context.detach(token)
    assert traced.attrs("no-baggage") == {}


def test_session_writes_baggage_when_enabled(traced_baggage: Traced) -> None:
    with session("w-s", thread_id="w-t", user_id="w-u"):
        assert baggage.get_all() == {SESSION_ID: "w-s", THREAD_ID: "w-t", USER_ID: "w-u"}
    assert baggage.get_all() == {}


def test_session_writes_no_baggage_when_off(traced: Traced) -> None:
    with session("w-s"):
        assert baggage.get_all() == {}


def test_local_session_beats_baggage(traced_baggage: Traced) -> None:
    token = _with_baggage({SESSION_ID: "upstream"})
    try:
        with session("local"):
            traced_baggage.tracer.start_span("local").end()
    finally:
        otel_context.detach(token)
    assert traced_baggage.attrs("local")[SESSION_ID] == "local"


def test_fast_path_and_set_attributes_path_store_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    assert processor_module._FAST_PATH  # the SDK in use has the attribute store shape we rely on
    results = []
    for fast in (True, False):
        monkeypatch.setattr(processor_module, "_FAST_PATH", fast)
        t = make_traced(baggage=False)
        with session("s", thread_id="t", user_id="u", name="n", metadata={"k": 1.5, "b": True}):
            t.tracer.start_span("x").end()
        results.append(t.attrs("x"))
    assert results[0] == results[1]


def test_span_limits_are_respected() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=2, max_span_attribute_length=8))
    provider.add_span_processor(SessionSpanProcessor(baggage=False))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with session("a-long-session-id", thread_id="t", user_id="u"):
        provider.get_tracer("t").start_span("limited").end()
    attrs = dict(exporter.get_finished_spans()[0].attributes)
    assert len(attrs) <= 2 and all(len(v) <= 8 for v in attrs.values())


def test_on_start_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        attributes = property(lambda self: 1 / 0)

    with caplog.at_level(logging.WARNING), session("s"):
        SessionSpanProcessor(baggage=True).on_start(Broken())  # type: ignore[arg-type]
    SessionSpanProcessor(baggage=False).on_start(Broken())  # type: ignore[arg-type]


def test_hooks_are_trivial() -> None:
    processor = SessionSpanProcessor(baggage=False)
    assert processor.force_flush() is True
    processor.shutdown()
