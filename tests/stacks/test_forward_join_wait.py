"""The join wait of forwarding (``--forward-join-wait``): spans that arrive before their trace
names a session are held until it does, so the downstream gets them with ``session.id``;
after the wait, beyond the hold bound and on shutdown they go on as they are, counted.

Real parts: the stock OTLP/gRPC exporter sends to a real service (one or two, on the suite's
Redis) forwarding to a real OTLP receiver (``downstream.py``)."""

from __future__ import annotations

import time

from tests.stacks.helpers import attributes, metric, send, tracer, wait_until
from tests.support import RunningService

JOIN = "otel_sessions_forward_join_spans_total"
HELD = "otel_sessions_forward_join_held_spans"
QUEUED = "otel_sessions_forward_queue_spans"
DROPPED = "otel_sessions_forward_spans_dropped_total"
RESULTS = ("joined", "timeout", "overflow", "shutdown")


def _trace(session_id: str, children: int = 1, **ids):
    """(root naming ``session_id`` and ``ids``, [children without ids]) of one real trace."""
    t, memory = tracer()
    with t.start_as_current_span("root", attributes={"session.id": session_id, **ids}):
        for i in range(children):
            with t.start_as_current_span(f"child {i}"):
                pass
    spans = memory.get_finished_spans()
    (root,) = [s for s in spans if s.name == "root"]
    return root, [s for s in spans if s.name != "root"]


class Counts:
    """The join counters and the held gauge, relative to when this was made."""

    def __init__(self) -> None:
        self.start = {result: metric(JOIN, result=result) for result in RESULTS}

    def __call__(self) -> dict[str, float]:
        out = {result: metric(JOIN, result=result) - self.start[result] for result in RESULTS}
        return {result: value for result, value in out.items() if value}


def _received(downstream, names: set[str], timeout: float = 10.0) -> dict[str, dict]:
    """Span name -> attributes, once every span named in ``names`` reached ``downstream``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = {s.name: attributes(s) for s in downstream.spans()}
        if names <= set(spans):
            return spans
        time.sleep(0.01)
    raise AssertionError(f"downstream got {sorted(s.name for s in downstream.spans())}, not all of {names}")


def test_a_child_sent_before_its_root_is_forwarded_with_its_session(redis_url, grpc_downstream):
    counts = Counts()
    root, (child,) = _trace("sess-jw1", **{"user.id": "u-jw1", "gen_ai.conversation.id": "thr-jw1"})
    with RunningService(redis_url, forward=[grpc_downstream.url], forward_join_wait="4s") as service:
        send(service.grpc_endpoint, [child])  # the trace names no session yet: parked, held
        assert wait_until(lambda: metric(HELD) == 1, message="child held")
        time.sleep(1.0)
        assert grpc_downstream.spans() == []  # still held
        sent_root = time.monotonic()
        send(service.grpc_endpoint, [root])  # names the session: the child is released with it
        spans = _received(grpc_downstream, {"root", "child 0"})
        assert time.monotonic() - sent_root < 2.0  # released when its session came, not at the wait's end
        assert service.session("sess-jw1").span_count == 2
    for name in ("root", "child 0"):
        assert spans[name]["session.id"] == "sess-jw1"
        assert spans[name]["user.id"] == "u-jw1" and spans[name]["gen_ai.conversation.id"] == "thr-jw1"
    assert len(grpc_downstream.spans()) == 2  # each span once
    assert counts() == {"joined": 1}
    assert metric(HELD) == 0


def test_after_the_wait_a_child_goes_on_as_it_is(redis_url, http_downstream):
    counts = Counts()
    root, (child,) = _trace("sess-jw2")
    with RunningService(redis_url, forward=[http_downstream.url], forward_join_wait="500ms") as service:
        sent = time.monotonic()
        send(service.grpc_endpoint, [child])
        spans = _received(http_downstream, {"child 0"})
        waited = time.monotonic() - sent
        assert 0.45 <= waited < 3.0, waited  # held for the wait, then sent
        assert "session.id" not in spans["child 0"]
        assert counts() == {"timeout": 1}
        send(service.grpc_endpoint, [root])  # too late for the forwarded copy; the store joins it
        _received(http_downstream, {"root"})
        assert service.session("sess-jw2").span_count == 2
    assert len(http_downstream.spans()) == 2
    assert counts() == {"timeout": 1}


def test_requests_whose_spans_all_have_sessions_are_not_delayed(redis_url, grpc_downstream):
    counts = Counts()
    root, children = _trace("sess-jw3", children=2)
    other_root, (other_child,) = _trace("sess-jw4")
    with RunningService(redis_url, forward=[grpc_downstream.url], forward_join_wait="5s") as service:
        sent = time.monotonic()
        send(service.grpc_endpoint, [root, *children])
        _received(grpc_downstream, {"root", "child 0", "child 1"})
        assert time.monotonic() - sent < 2.0  # well under the wait (5 s)
        # one request, one trace complete and a child whose trace names no session yet: the
        # complete trace goes on at once, the child waits for its root
        sent = time.monotonic()
        send(service.grpc_endpoint, [other_child, _trace("sess-jw5")[0]])
        wait_until(lambda: len(grpc_downstream.spans()) == 4, message="the complete trace")
        assert time.monotonic() - sent < 2.0  # not held (the wait is 5 s)
        assert {s.name for s in grpc_downstream.spans()} == {"root", "child 0", "child 1"}
        assert metric(HELD) == 1
        send(service.grpc_endpoint, [other_root])
        spans = wait_until(lambda: (s := grpc_downstream.spans()) and len(s) == 6 and s, message="all six")
    by_trace = {(s.trace_id, s.name): attributes(s).get("session.id") for s in spans}
    assert by_trace[(other_child.context.trace_id.to_bytes(16, "big"), "child 0")] == "sess-jw4"
    assert sorted(v for v in by_trace.values()) == ["sess-jw3"] * 3 + ["sess-jw4"] * 2 + ["sess-jw5"]
    assert counts() == {"joined": 1}


def test_the_hold_is_bounded_in_spans(redis_url, grpc_downstream):
    counts = Counts()
    root, children = _trace("sess-jw6", children=3)
    root2, children2 = _trace("sess-jw7", children=2)
    root3, (child3,) = _trace("sess-jw8")
    url = grpc_downstream.url
    with RunningService(redis_url, forward=[url], forward_join_wait="5s", forward_join_max_spans=2) as service:
        send(service.grpc_endpoint, children)  # 3 spans > the bound of 2: not held, sent as they are
        spans = _received(grpc_downstream, {"child 0", "child 1", "child 2"}, timeout=2.0)
        assert all("session.id" not in attrs for attrs in spans.values())
        assert counts() == {"overflow": 3}
        send(service.grpc_endpoint, children2)  # 2 spans: held
        assert metric(HELD) == 2
        wait_until(lambda: metric(QUEUED, destination=url) == 2, message="only the held spans queued")
        send(service.grpc_endpoint, [child3])  # 2 + 1 > 2: sent as it is
        wait_until(lambda: len(grpc_downstream.spans()) == 4, message="the overflowing child")
        assert counts() == {"overflow": 4}
        send(service.grpc_endpoint, [root2])
        wait_until(lambda: len(grpc_downstream.spans()) == 7, message="root and held children")
    joined = [attributes(s) for s in grpc_downstream.spans()[4:]]
    assert [a["session.id"] for a in joined] == ["sess-jw7"] * 3
    assert counts() == {"overflow": 4, "joined": 2}
    assert metric(HELD) == 0


def test_held_spans_take_their_room_in_the_destination_queue(redis_url, grpc_downstream):
    url = grpc_downstream.url
    grpc_downstream.stop()  # nothing leaves the queue
    root, children = _trace("sess-jw9", children=2)
    with RunningService(redis_url, forward=[url], forward_join_wait="5s", forward_queue=3) as service:
        send(service.grpc_endpoint, children)  # 2 held: 2 of the 3 taken
        assert metric(QUEUED, destination=url) == 2
        send(service.grpc_endpoint, [root, _trace("sess-jw10")[0]])  # 2 spans do not fit
        assert metric(DROPPED, destination=url, reason="queue_full") == 2
        assert metric(QUEUED, destination=url) == 2
        service.call(service.service.stop(grace=0.2))
    assert metric(QUEUED, destination=url) == 0


def test_stop_flushes_held_spans(redis_url, grpc_downstream):
    counts = Counts()
    _root, children = _trace("sess-jw11", children=2)
    service = RunningService(redis_url, forward=[grpc_downstream.url], forward_join_wait="30s").start()
    try:
        send(service.grpc_endpoint, children)
        assert metric(HELD) == 2
    finally:
        started = time.monotonic()
        service.stop()
    assert time.monotonic() - started < 3.0  # within the drain deadline, not the wait
    spans = grpc_downstream.spans()  # stop() returned: the held spans were sent, as they are
    assert sorted(s.name for s in spans) == ["child 0", "child 1"]
    assert all("session.id" not in attributes(s) for s in spans)
    assert counts() == {"shutdown": 2}
    assert metric(HELD) == 0


def test_a_root_received_by_another_process_joins_the_held_child(redis_url, grpc_downstream):
    """Two services on one Redis: the child reaches the forwarding one, its root the other one.
    When the wait ends, the trace map in Redis names the session: the child goes on with it."""
    counts = Counts()
    root, (child,) = _trace("sess-jw12", **{"user.id": "u-jw12"})
    with RunningService(redis_url) as other, \
            RunningService(redis_url, forward=[grpc_downstream.url], forward_join_wait="1500ms") as forwarding:
        sent = time.monotonic()
        send(forwarding.grpc_endpoint, [child])
        time.sleep(0.3)
        send(other.grpc_endpoint, [root])  # claims the trace in Redis, adopts the parked child
        spans = _received(grpc_downstream, {"child 0"})
        assert time.monotonic() - sent >= 1.4  # this process learnt it only when the wait ended
        assert spans["child 0"]["session.id"] == "sess-jw12"
        assert spans["child 0"]["user.id"] == "u-jw12"  # from the session's summary
        assert forwarding.session("sess-jw12").span_count == 2
    assert counts() == {"joined": 1}


def test_a_child_whose_root_another_process_received_first_is_forwarded_with_it(redis_url, grpc_downstream):
    """The root came first, to another process: the child's own write learns the session from
    the trace map (it is not parked), and is forwarded with it at once."""
    counts = Counts()
    root, (child,) = _trace("sess-jw13")
    with RunningService(redis_url) as other, \
            RunningService(redis_url, forward=[grpc_downstream.url], forward_join_wait="5s") as forwarding:
        send(other.grpc_endpoint, [root])
        sent = time.monotonic()
        send(forwarding.grpc_endpoint, [child])
        spans = _received(grpc_downstream, {"child 0"})
        assert time.monotonic() - sent < 2.0  # not held (the wait is 5 s)
    assert spans["child 0"]["session.id"] == "sess-jw13"
    assert counts() == {}


def test_join_wait_settings_are_validated():
    import pytest

    from otel_sessions.exporter.serve.settings import Settings, SettingsError

    s = Settings.resolve({}, env={})
    assert (s.forward_join_wait, s.forward_join_max_spans) == (5.0, 20_000)
    s = Settings.resolve({}, env={"OTEL_SESSIONS_FORWARD_JOIN_WAIT": "0", "OTEL_SESSIONS_FORWARD_JOIN_MAX_SPANS": "7"})
    forward = s.forward_settings()
    assert (forward.join_wait_s, forward.join_max_spans) == (0.0, 7)
    assert Settings.resolve({"forward_join_wait": "1500ms"}, env={}).forward_join_wait == 1.5
    for args, names in (({"forward_join_wait": "soon"}, "--forward-join-wait / OTEL_SESSIONS_FORWARD_JOIN_WAIT"),
                        ({"forward_join_wait": "2h"}, "--forward-join-wait / OTEL_SESSIONS_FORWARD_JOIN_WAIT"),
                        ({"forward_join_max_spans": "0"},
                         "--forward-join-max-spans / OTEL_SESSIONS_FORWARD_JOIN_MAX_SPANS")):
        with pytest.raises(SettingsError, match=names):
            Settings.resolve(args, env={})


def test_a_zero_wait_forwards_parked_spans_at_once(redis_url, grpc_downstream):
    counts = Counts()
    _root, (child,) = _trace("sess-jw14")
    with RunningService(redis_url, forward=[grpc_downstream.url], forward_join_wait="0") as service:
        sent = time.monotonic()
        send(service.grpc_endpoint, [child])
        spans = _received(grpc_downstream, {"child 0"})
        assert time.monotonic() - sent < 2.0  # not held
    assert "session.id" not in spans["child 0"]
    assert counts() == {} and metric(HELD) == 0
