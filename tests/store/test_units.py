"""Units of the store's model: key builders, status rules, span limits, settings."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.trace import Status, StatusCode

from otel_sessions.exporter.ingest.pricing import PriceTable
from otel_sessions.exporter.serve.settings import Settings, SettingsError, parse_duration
from otel_sessions.exporter.store.keys import INDEX_SHARDS, Keys, session_shard
from otel_sessions.exporter.store.summary import session_status
from tests.support import RunningService, provider_with, span_count


def _slot_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes (the first non-empty {...})."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if start == -1 or end == -1 or end == start + 1:
        return key
    return key[start + 1:end]


@pytest.mark.parametrize("session_id", ["sess_1", "a}b", "{x}", "}", "ünï", "x" * 256])
def test_all_keys_of_a_session_share_one_slot(session_id):
    keys = Keys("ots")
    tags = {_slot_tag(k) for k in (*keys.session(session_id), keys.tail_channel(session_id))}
    assert len(tags) == 1 and tags != {""}
    assert all(k.startswith("ots:") for k in keys.session(session_id))
    assert len(set(keys.session(session_id))) == 4


def test_index_keys_are_sharded_not_hot():
    keys = Keys("p")
    assert len({_slot_tag(keys.seen(i)) for i in range(INDEX_SHARDS)}) == INDEX_SHARDS
    assert _slot_tag(keys.user(3, "u")) == _slot_tag(keys.seen(3)) == _slot_tag(keys.sort_index(3, "cost"))
    assert {session_shard(f"s{i}") for i in range(1000)} == set(range(INDEX_SHARDS))
    trace = b"\x00" * 14 + b"\x43\x05"
    assert keys.trace_map(trace, 7) == "p:{tj:5}m7.3"
    assert _slot_tag(keys.trace_map(trace, 8)) == _slot_tag(keys.trace_pending(trace))
    with pytest.raises(KeyError):
        keys.sort_index(0, "nope")


def test_status_rules():
    minute = 60_000.0
    base = {"seen": "0"}
    assert session_status({**base, "failed": "1", "ended": "1", "escalated": "1"}, 1, 300, 1800) == "failed"
    assert session_status({**base, "escalated": "1", "ended": "1"}, 1, 300, 1800) == "escalated"
    assert session_status({**base, "ended": "1"}, 1, 300, 1800) == "completed"
    assert session_status(base, 4 * minute, 300, 1800) == "active"
    assert session_status(base, 6 * minute, 300, 1800) == "idle"
    assert session_status(base, 31 * minute, 300, 1800) == "abandoned"


def test_status_from_spans(service):
    provider = provider_with(GrpcExporter(endpoint=service.grpc_endpoint, insecure=True))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("turn", attributes={"session.id": "s-done"}) as span:
        span.add_event("session.end")
    with tracer.start_as_current_span("turn", attributes={"session.id": "s-human", "session.escalated": True}):
        pass
    with tracer.start_as_current_span("turn", attributes={"session.id": "s-fail"}) as span:
        with tracer.start_as_current_span("child", attributes={"session.id": "s-fail"}) as child:
            child.record_exception(ValueError("tool broke"))
        span.set_status(Status(StatusCode.ERROR))
    with tracer.start_as_current_span("turn", attributes={"session.id": "s-child-error"}):
        with tracer.start_as_current_span("child", attributes={"session.id": "s-child-error"}) as child:
            child.set_status(Status(StatusCode.ERROR))
    provider.shutdown()
    assert service.session("s-done").status == "completed"
    assert service.session("s-human").status == "escalated"
    failed = service.session("s-fail")
    assert failed.status == "failed" and failed.error_count == 2  # exception event + ERROR root
    child_error = service.session("s-child-error")
    assert child_error.status == "active" and child_error.error_count == 1  # only a root error fails it


def test_spans_per_session_limit_drops_oldest_from_store(redis_url):
    with RunningService(redis_url, max_spans_per_session="10") as service:
        exporter = GrpcExporter(endpoint=service.grpc_endpoint, insecure=True)
        provider = provider_with(exporter)
        tracer = provider.get_tracer("t")
        for batch in range(3):
            for i in range(6):
                with tracer.start_as_current_span(f"b{batch} s{i}", attributes={"session.id": "s-big"}):
                    pass
        provider.shutdown()
        s = service.session("s-big")
        assert s.span_count == 18 and s.truncated and s.spans_dropped == 8
        kept = service.spans("s-big")
        assert span_count(kept) == 10
        names = {sp.name for rs in kept.resource_spans for ss in rs.scope_spans for sp in ss.spans}
        assert "b2 s5" in names and "b0 s0" not in names


def test_metadata_previous_id_and_aliases(service):
    provider = provider_with(GrpcExporter(endpoint=service.grpc_endpoint, insecure=True))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("lf", attributes={
        "langfuse.session.id": "lf-1", "langfuse.user.id": "lf-user", "session.metadata.plan": "pro",
        "session.metadata.channel": "web", "session.previous_id": "lf-0",
        "llm.token_count.prompt": 7, "llm.token_count.completion": 3, "llm.model_name": "my-model",
        "llm.cost.total": 0.25,
    }):
        pass
    with tracer.start_as_current_span("conv", attributes={"gen_ai.conversation.id": "conv-only"}):
        pass
    provider.shutdown()
    s = service.session("lf-1")
    assert s.user_id == "lf-user" and s.previous_id == "lf-0"
    assert s.metadata == {"plan": "pro", "channel": "web"}
    assert (s.input_tokens, s.output_tokens, s.cost_usd, s.cost_estimated) == (7, 3, 0.25, False)
    assert s.models == ["my-model"]
    conv = service.session("conv-only")  # the conversation id is the session when none is given
    assert conv is not None and conv.thread_id == "conv-only"


def test_price_table():
    table = PriceTable.load(None)
    assert table.estimate("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert table.estimate("gpt-4o-2024-08-06", 0, 1_000_000) == pytest.approx(10.0)
    assert table.estimate("unknown-model", 10, 10) is None


def test_settings_resolution_order():
    env = {"OTEL_SESSIONS_RETENTION": "2h", "OTEL_SESSIONS_FORWARD": "grpc://a:4317, http://b:4318"}
    s = Settings.resolve({"retention": None}, env=env)
    assert s.retention == 7200 and s.forward == ("grpc://a:4317", "http://b:4318")
    s = Settings.resolve({"retention": "90s"}, env=env)
    assert s.retention == 90
    assert Settings.resolve({}, env={}).grpc_listen == ("127.0.0.1", 4317)
    assert Settings.resolve({}, env={}).redis_timeout == 5
    assert Settings.resolve({}, env={"OTEL_SESSIONS_REDIS_TIMEOUT": "750ms"}).redis_timeout == 0.75
    assert parse_duration("500ms") == 0.5 and parse_duration("7d") == 7 * 86400
    with pytest.raises(SettingsError, match="--key-prefix / OTEL_SESSIONS_KEY_PREFIX"):
        Settings.resolve({"key_prefix": "a{b}"}, env={})


def test_demo_rerun_with_the_same_seed_adds_nothing(service):
    from otel_sessions.exporter.cli.demo import run_demo

    first = run_demo(service.http_url, seed=7)
    counts = [service.session(s["id"]).span_count for s in first.sessions]
    assert counts == [s["spans"] for s in first.sessions]
    run_demo(service.http_url, seed=7)
    assert [service.session(s["id"]).span_count for s in first.sessions] == counts


def test_relative_data_dir_is_made_absolute(tmp_path, monkeypatch):
    """The embedded redis-server runs in the data directory: a relative path given on the
    command line must not be read relative to it a second time."""
    monkeypatch.chdir(tmp_path)
    assert Settings.resolve({"data_dir": "dd"}, env={}).data_dir == tmp_path / "dd"


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6390/0", "rediss://127.0.0.1:6390/0", "unix:///tmp/r.sock?db=0"])
def test_standalone_clients_pack_commands_with_hiredis_for_every_scheme(url):
    from otel_sessions.exporter.store.redis_client import _HiredisPacking, connect

    client = connect(url)
    assert issubclass(client.connection_pool.connection_class, _HiredisPacking)


def test_a_pipeline_over_a_unix_socket_is_packed_by_hiredis(tmp_path, monkeypatch):
    """serve's embedded Redis listens on a unix socket, whose URL made redis-py pick its own
    (pure-Python packing) connection class."""
    import redis.asyncio.connection as connection

    from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis
    from otel_sessions.exporter.store.redis_client import connect

    server = EmbeddedRedis(tmp_path, port=0, persistent=False).start()
    redis_url = server.url

    packed_by_redis_py = []
    original = connection.AbstractConnection.pack_command
    monkeypatch.setattr(connection.AbstractConnection, "pack_command",
                        lambda self, *args: packed_by_redis_py.append(args) or original(self, *args))

    async def round_trip() -> list:
        client = connect(redis_url)
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set("ots-test:packing", b"\x00\xff", px=10_000)
            pipe.get("ots-test:packing")
            return await pipe.execute()
        finally:
            await client.aclose()

    try:
        assert redis_url.startswith("unix://")
        assert asyncio.run(round_trip()) == [True, b"\x00\xff"]
    finally:
        server.stop()
    assert packed_by_redis_py == []
