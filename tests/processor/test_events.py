"""end_session, state_change and escalate_session write span events/attributes."""

from __future__ import annotations

from otel_sessions.processor import end_session, escalate_session, session, state_change
from otel_sessions.processor.attributes import (
    SESSION_END_EVENT,
    SESSION_ESCALATED,
    SESSION_ID,
    STATE_CHANGE_EVENT,
    STATE_CHANGE_KEY,
    STATE_CHANGE_TRUNCATED,
    STATE_CHANGE_VALUE,
)

from .conftest import Traced


def test_end_session_adds_the_event_to_the_current_span(traced: Traced) -> None:
    with session("s-end"), traced.tracer.start_as_current_span("last"):
        assert end_session() is True
    (event,) = traced.spans()["last"].events
    assert event.name == SESSION_END_EVENT and dict(event.attributes) == {SESSION_ID: "s-end"}


def test_end_session_without_span_or_session_is_a_no_op(traced: Traced) -> None:
    assert end_session() is False  # no session, no span
    with session("s"):
        assert end_session() is False  # no recording span
    with traced.tracer.start_as_current_span("no-session"):
        assert end_session() is False
    assert traced.spans()["no-session"].events == ()


def test_state_change_caps_the_value(traced: Traced) -> None:
    with traced.tracer.start_as_current_span("state") as span:
        assert state_change("cart", {"items": 2})
        assert state_change("notes", "x" * 50, max_length=10)
        assert state_change("obj", object(), span=span)
    first, second, third = traced.spans()["state"].events
    assert first.name == STATE_CHANGE_EVENT
    assert dict(first.attributes) == {STATE_CHANGE_KEY: "cart", STATE_CHANGE_VALUE: '{"items": 2}'}
    assert second.attributes[STATE_CHANGE_VALUE] == "x" * 10 and second.attributes[STATE_CHANGE_TRUNCATED] is True
    assert third.attributes[STATE_CHANGE_VALUE].startswith('"<object object')


def test_escalate_session(traced: Traced) -> None:
    with traced.tracer.start_as_current_span("handoff"):
        assert escalate_session()
    assert traced.attrs("handoff")[SESSION_ESCALATED] is True
    assert escalate_session() is False
