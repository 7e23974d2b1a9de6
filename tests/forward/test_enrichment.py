"""Enrichment of forwarded requests: a real OTLP request grouped as the ingestor groups it,
then sent through :class:`Item` -> session.id, gen_ai.conversation.id and user.id added where
missing, never overwriting a span's own value."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import REGISTRY

from otel_sessions.exporter.errors import StoreUnavailable
from otel_sessions.exporter.forward.enrichment import Item, SessionInfo
from otel_sessions.exporter.ingest.grouping import BatchBuilder
from otel_sessions.exporter.ingest.ingestor import StoredBatch

T1, T2, T3, T4 = (bytes([n]) * 16 for n in (1, 2, 3, 4))
ENRICHED = "otel_sessions_forward_spans_enriched_total"


class FakeStore:
    """The one call enrichment makes to the store: session summaries (thread and user)."""

    def __init__(self, summaries: dict[str, tuple[str | None, str | None]] | None = None,
                 fail: bool = False) -> None:
        self.summaries = summaries or {}
        self.fail = fail
        self.asked: list[list[str]] = []

    async def get_summaries(self, session_ids: list[str]):
        self.asked.append(sorted(session_ids))
        if self.fail:
            raise StoreUnavailable("redis down")
        await asyncio.sleep(0)
        found = [self.summaries.get(s) for s in session_ids]
        return [SimpleNamespace(thread_id=f[0], user_id=f[1]) if f else None for f in found]


def _span(trace_id: bytes, n: int, name: str, parent: int | None = None, **attributes: str) -> Span:
    """Span ``n`` of a trace; attributes given as a mapping (``**{"session.id": ...}``)."""
    span = Span(trace_id=trace_id, span_id=bytes([trace_id[0], n]) * 4, name=name,
                start_time_unix_nano=1_700_000_000_000_000_000 + n, end_time_unix_nano=1_700_000_000_000_000_100 + n)
    if parent is not None:
        span.parent_span_id = bytes([trace_id[0], parent]) * 4
    for key, value in attributes.items():
        span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    return span


def _request(*spans: Span) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="shop")))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests.forward"
    scope_spans.spans.extend(spans)
    return request


def _stored(request: ExportTraceServiceRequest) -> StoredBatch:
    """What the ingestor hands its after-store hooks for ``request`` (Ingestor.export): the
    grouped batch, its orphans joined to sessions named in the same request (the part of
    Ingestor.write that needs no store), and the request's bytes."""
    body = request.SerializeToString()
    batch = BatchBuilder().build(ExportTraceServiceRequest.FromString(body).resource_spans)
    batch.join_local()
    return StoredBatch(body, batch)


def _forwarded(payload: bytes) -> dict[str, dict[str, str]]:
    """Span name -> attributes of a forwarded request (each key at most once per span)."""
    spans = {}
    for rs in ExportTraceServiceRequest.FromString(payload).resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                keys = [kv.key for kv in span.attributes]
                assert len(keys) == len(set(keys)), f"{span.name}: an attribute twice: {keys}"
                spans[span.name] = {kv.key: kv.value.string_value for kv in span.attributes}
    return spans


def _enriched() -> float:
    return REGISTRY.get_sample_value(ENRICHED) or 0.0


def test_ids_are_added_where_missing_and_a_spans_own_value_wins():
    request = _request(
        # trace 1 names session, thread and user on its root; its children are joined by trace
        _span(T1, 1, "root", **{"session.id": "s-1", "gen_ai.conversation.id": "th-1", "user.id": "u-1"}),
        _span(T1, 2, "child", parent=1),
        _span(T1, 3, "own user", parent=1, **{"user.id": "u-own"}),
        _span(T1, 5, "own thread", parent=1, **{"session.id": "s-1", "gen_ai.conversation.id": "th-own"}),
        _span(T1, 4, "alias", parent=1, **{"langfuse.session.id": "s-1"}),
        # trace 2 names only its session: thread and user come from the session's stored summary
        _span(T2, 1, "s2 root", **{"session.id": "s-2"}),
        _span(T2, 2, "s2 child", parent=1),
        # trace 4 names only a conversation: with no session id, the conversation is the session
        _span(T4, 1, "conversation", **{"gen_ai.conversation.id": "conv-9"}),
        # trace 3 names no session: forwarded as it is
        _span(T3, 1, "lonely", **{"user.id": "u-3"}),
    )
    store = FakeStore({"s-2": ("th-2", "u-2"), "s-1": ("th-stored", "u-stored")})
    before = _enriched()

    payload = asyncio.run(Item(_stored(request)).payload(SessionInfo(store)))

    spans = _forwarded(payload)
    ids = ("session.id", "gen_ai.conversation.id", "user.id")
    assert {name: tuple(attrs.get(key) for key in ids) for name, attrs in spans.items()} == {
        "root": ("s-1", "th-1", "u-1"),  # had all three: unchanged
        "child": ("s-1", "th-1", "u-1"),
        "own user": ("s-1", "th-1", "u-own"),  # its own user.id kept
        "own thread": ("s-1", "th-own", "u-1"),  # its own conversation id kept
        "alias": ("s-1", "th-1", "u-1"),  # named its session under an alias: session.id added too
        "s2 root": ("s-2", "th-2", "u-2"),
        "s2 child": ("s-2", "th-2", "u-2"),
        "conversation": ("conv-9", "conv-9", None),
        "lonely": (None, None, "u-3"),
    }
    assert spans["alias"]["langfuse.session.id"] == "s-1"
    assert store.asked == [["conv-9", "s-2"]]  # the request named s-1's thread and user: not asked
    assert _enriched() - before == 7  # spans given at least one id

    original = ExportTraceServiceRequest.FromString(request.SerializeToString())
    forwarded = ExportTraceServiceRequest.FromString(payload)
    assert forwarded.resource_spans[0].resource == original.resource_spans[0].resource
    assert forwarded.resource_spans[0].scope_spans[0].scope == original.resource_spans[0].scope_spans[0].scope
    for sent, received in zip(forwarded.resource_spans[0].scope_spans[0].spans,
                              original.resource_spans[0].scope_spans[0].spans, strict=True):
        if sent.name in ("root", "lonely"):
            assert sent == received  # nothing to add: the span as it came
        else:  # only attributes were added, after the span's own, in order
            assert (sent.trace_id, sent.span_id, sent.parent_span_id) == (
                received.trace_id, received.span_id, received.parent_span_id)
            assert list(sent.attributes)[:len(received.attributes)] == list(received.attributes)


def test_a_request_with_nothing_to_add_is_sent_as_received():
    request = _request(
        _span(T1, 1, "root", **{"session.id": "s-1", "gen_ai.conversation.id": "th-1", "user.id": "u-1"}),
        _span(T1, 2, "child", parent=1, **{"session.id": "s-1", "gen_ai.conversation.id": "th-1",
                                           "user.id": "u-1"}),
    )
    stored = _stored(request)
    assert asyncio.run(Item(stored).payload(SessionInfo(None))) is stored.body


def test_spans_held_for_joining_leave_their_request_and_follow_with_their_trace_session():
    request = _request(
        _span(T1, 1, "root", **{"session.id": "s-1"}),
        _span(T3, 1, "parked root"),
        _span(T3, 2, "parked child", parent=1, **{"user.id": "u-own"}),
        _span(T4, 1, "parked elsewhere"),
    )
    second = _request(_span(T2, 1, "other scope", **{"session.id": "s-2"}))
    request.resource_spans.extend(second.resource_spans)
    stored = _stored(request)
    assert set(stored.parked) == {T3, T4}  # their traces named no session (no store here: none joined)
    assert [len(keys) for keys in stored.parked.values()] == [2, 1]
    assert stored.trace_owners == {T1: "s-1", T2: "s-2"}
    held = {key for keys in stored.parked.values() for key in keys}
    store = FakeStore({"s-9": ("th-9", "u-9")})
    sessions = SessionInfo(store)

    now = Item.without(stored, held, 3)
    assert now.span_count == 2
    assert set(_forwarded(asyncio.run(now.payload(sessions)))) == {"root", "other scope"}

    later = Item.held(stored.body, frozenset(stored.parked[T3] + stored.parked[T4]), {T3: "s-9"}, 3)
    spans = _forwarded(asyncio.run(later.payload(sessions)))
    assert spans == {
        "parked root": {"session.id": "s-9", "gen_ai.conversation.id": "th-9", "user.id": "u-9"},
        "parked child": {"user.id": "u-own", "session.id": "s-9", "gen_ai.conversation.id": "th-9"},
        "parked elsewhere": {},  # its trace joined no session: as it came
    }
    forwarded = ExportTraceServiceRequest.FromString(asyncio.run(later.payload(sessions)))
    assert len(forwarded.resource_spans) == 1  # the resource left without spans is left out
    assert forwarded.resource_spans[0].resource == request.resource_spans[0].resource

    alone = Item.held(stored.body, frozenset(stored.parked[T4]), {}, 1)  # nothing to add: only selected
    assert set(_forwarded(asyncio.run(alone.payload(SessionInfo(None))))) == {"parked elsewhere"}


def test_a_request_naming_no_session_is_not_parsed_again_and_the_store_not_asked():
    store = FakeStore()
    stored = _stored(_request(_span(T3, 1, "lonely"), _span(T3, 2, "child", parent=1)))
    assert stored.sessions == {} and stored.span_count == 2
    assert asyncio.run(Item(stored).payload(SessionInfo(store))) is stored.body
    assert store.asked == []


def test_without_the_store_the_session_is_still_added():
    request = _request(_span(T2, 1, "s2 root", **{"session.id": "s-2"}), _span(T2, 2, "s2 child", parent=1))
    store = FakeStore(fail=True)
    spans = _forwarded(asyncio.run(Item(_stored(request)).payload(SessionInfo(store))))
    assert spans == {"s2 root": {"session.id": "s-2"}, "s2 child": {"session.id": "s-2"}}
    assert store.asked == [["s-2"]]


def test_enrichment_runs_once_for_every_destination():
    async def scenario():
        store = FakeStore({"s-2": ("th-2", "u-2")})
        item = Item(_stored(_request(_span(T2, 1, "s2 root", **{"session.id": "s-2"}))))
        sessions = SessionInfo(store)
        payloads = await asyncio.gather(*(item.payload(sessions) for _ in range(3)))
        assert payloads[0] == payloads[1] == payloads[2]
        assert await item.payload(sessions) is payloads[0]
        assert store.asked == [["s-2"]]
        return payloads[0]

    assert _forwarded(asyncio.run(scenario()))["s2 root"]["user.id"] == "u-2"


def test_session_info_keeps_the_first_values_learnt_and_a_bounded_number_of_sessions():
    async def scenario():
        store = FakeStore({"s-1": ("th-stored", "u-stored"), "s-3": ("th-3", None)})
        sessions = SessionInfo(store, size=2)
        sessions.learn("s-1", None, "u-1")
        sessions.learn("s-1", "th-1", "u-other")  # the user learnt first stays
        sessions.learn("s-2", "th-2", "u-2")
        assert await sessions.lookup({"s-1", "s-2"}) == {"s-1": ("th-1", "u-1"), "s-2": ("th-2", "u-2")}
        assert store.asked == []  # both known in full
        sessions.learn("s-3", None, None)  # s-1 is the oldest: forgotten
        assert await sessions.lookup({"s-1", "s-3"}) == {"s-1": ("th-stored", "u-stored"), "s-3": ("th-3", None)}
        assert store.asked == [["s-1", "s-3"]]  # only sessions missing a thread or a user are read

    asyncio.run(scenario())
