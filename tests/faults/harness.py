"""What the fault tests share: a redis-server of the test's own that can be abused, a workload
whose exact figures are known, raw OTLP clients that show the status the service answers,
and the checks that every session was stored exactly once and is found by every lookup."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis, free_port
from otel_sessions.exporter.store.keys import Keys, session_shard
from otel_sessions.exporter.store.schema import Field

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class FaultyRedis:
    """A redis-server of one test (its own folder, a free port, never 6379), with an admin
    client and the abuses the tests need: stop and continue the process, configuration."""

    def __init__(self, folder: Path, extra_args: list[str] | None = None) -> None:
        # its folder can be changed at run time (CONFIG SET dir), as an operator could
        self.server = EmbeddedRedis(folder, port=None, persistent=False,
                                    extra_args=["--enable-protected-configs", "yes", *(extra_args or [])])
        self.admin: redis.Redis | None = None
        self._stopped = False

    def start(self) -> FaultyRedis:
        self.server.start()
        self.admin = redis.Redis.from_url(self.server.url, socket_timeout=15)
        return self

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def sigstop(self) -> None:
        os.kill(self.server.pid, signal.SIGSTOP)
        self._stopped = True

    def sigcont(self) -> None:
        if self._stopped:
            os.kill(self.server.pid, signal.SIGCONT)
            self._stopped = False

    def used_memory(self) -> int:
        return int(self.admin.info("memory")["used_memory"])

    def close(self) -> None:
        self.sigcont()
        if self.admin is not None:
            self.admin.close()
        self.server.stop()


# --- conditions that make Redis refuse writes, and their end -----------------------------------

@dataclass
class Condition:
    """A real Redis condition under which writes fail: ``code`` is what the service names
    (the reply's code, or ``timeout`` / ``connection``); ``readable``: whether other clients
    can still read meanwhile."""

    code: str
    refuse: Callable[[], None]
    recover: Callable[[], None]
    readable: bool = True

    @property
    def ready_state(self) -> str:
        """The ``redis`` field of ``/readyz`` while it lasts."""
        return "refusing writes" if self.code.isupper() else "unreachable"


def conditions(redis_: FaultyRedis, folder: Path) -> dict[str, Condition]:
    """Every condition this suite can cause on ``redis_`` (``folder``: room for a second
    redis-server and a data folder that goes away)."""
    admin = redis_.admin
    others: list[FaultyRedis] = []
    home = admin.config_get("dir")["dir"]

    def persistence() -> dict:
        return admin.info("persistence")

    def out_of_memory() -> None:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", redis_.used_memory() // 2)

    def replica_of_another(read_only: bool = True) -> Callable[[], None]:
        def demote() -> None:  # a failover made it a replica of another server
            if read_only:
                primary = FaultyRedis(folder / f"primary-{len(others)}").start()
                others.append(primary)
                admin.config_set("replica-read-only", "yes")
                admin.replicaof("127.0.0.1", primary.port)
                wait_until(lambda: admin.info("replication").get("master_link_status") == "up", 15,
                           "the replica to sync")
            else:  # a writable replica whose primary is gone, told not to serve stale data
                admin.config_set("replica-read-only", "no")
                admin.config_set("replica-serve-stale-data", "no")
                admin.replicaof("127.0.0.1", free_port())
        return demote

    def promote() -> None:
        admin.replicaof("NO", "ONE")
        admin.config_set("replica-read-only", "yes")
        admin.config_set("replica-serve-stale-data", "yes")
        while others:
            others.pop().close()

    def failed_save() -> None:  # the disk under the RDB file goes away and a save fails
        gone = folder / "disk-gone"
        gone.mkdir(exist_ok=True)
        admin.config_set("save", "3600 1")
        admin.config_set("stop-writes-on-bgsave-error", "yes")
        admin.config_set("dir", str(gone))
        shutil.rmtree(gone)
        admin.bgsave()
        wait_until(lambda: persistence()["rdb_bgsave_in_progress"] == 0
                   and persistence()["rdb_last_bgsave_status"] == "err", 15, "the save to fail")

    def good_save() -> None:  # the disk is back: the next save succeeds
        admin.config_set("dir", home)
        admin.bgsave()
        wait_until(lambda: persistence()["rdb_bgsave_in_progress"] == 0
                   and persistence()["rdb_last_bgsave_status"] == "ok", 15, "the save to succeed")
        admin.config_set("save", "")

    busy: list[threading.Thread] = []

    def busy_script() -> None:  # another client runs a script that does not end
        looping = redis.Redis.from_url(redis_.url, socket_timeout=60)

        def run() -> None:
            with contextlib.suppress(redis.ResponseError):  # killed
                looping.eval("local n = 0 while true do n = n + 1 end", 0)
            looping.close()

        admin.config_set("busy-reply-threshold", 100)  # ms before others are told BUSY
        busy.append(threading.Thread(target=run, daemon=True))
        busy[-1].start()
        time.sleep(0.3)

    def kill_script() -> None:
        wait_until(lambda: _killed(admin), 10, "SCRIPT KILL to be taken")
        busy.pop().join(10)

    return {
        "OOM": Condition("OOM", out_of_memory, lambda: admin.config_set("maxmemory", 0)),
        "READONLY": Condition("READONLY", replica_of_another(), promote),
        "MASTERDOWN": Condition("MASTERDOWN", replica_of_another(read_only=False), promote, readable=False),
        "NOREPLICAS": Condition("NOREPLICAS", lambda: admin.config_set("min-replicas-to-write", 1),
                                lambda: admin.config_set("min-replicas-to-write", 0)),
        "MISCONF": Condition("MISCONF", failed_save, good_save),
        "BUSY": Condition("BUSY", busy_script, kill_script, readable=False),
        "timeout": Condition("timeout", redis_.sigstop, redis_.sigcont, readable=False),
    }


def _killed(admin: redis.Redis) -> bool:
    try:
        admin.script_kill()
        return True
    except redis.ResponseError:  # NOTBUSY: the loop has not started yet
        return False


# --- the workload --------------------------------------------------------------------------

@dataclass
class Expected:
    """What one session must hold once everything sent was stored exactly once."""

    user: str
    thread: str
    name: str
    spans: int = 0
    traces: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Workload:
    """Sessions sent in batches; each session's part of a batch is one trace of its own, so the
    exact span, trace and token figures of every session are known in advance."""

    prefix: str
    users: tuple[str, ...] = ("alice", "bob", "carol")
    expected: dict[str, Expected] = field(default_factory=dict)
    _counter: int = 0

    def __post_init__(self) -> None:
        self._memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": f"{self.prefix}-app"}))
        provider.add_span_processor(SimpleSpanProcessor(self._memory))
        self._tracer = provider.get_tracer("faults")

    def session_id(self, number: int) -> str:
        return f"{self.prefix}-s{number:03d}"

    def batch(self, sessions: list[int], spans_each: int = 3, payload: int = 0) -> list[ReadableSpan]:
        """One request: ``spans_each`` spans (one trace) for each session number; ``payload``
        random bytes per span (hex) make the request that much bigger in Redis."""
        self._memory.clear()
        for number in sessions:
            sid = self.session_id(number)
            user = self.users[number % len(self.users)]
            want = self.expected.setdefault(sid, Expected(user=f"{self.prefix}-{user}",
                                                          thread=f"{self.prefix}-thread-{user}",
                                                          name=f"chat {number}"))
            want.traces += 1
            attributes = {"session.id": sid, "user.id": want.user, "gen_ai.conversation.id": want.thread,
                          "session.name": want.name}
            with self._tracer.start_as_current_span(f"turn {number}", attributes=attributes):
                for i in range(spans_each - 1):
                    self._counter += 1
                    tokens_in, tokens_out = 10 + self._counter % 7, 1 + self._counter % 5
                    extra = {"blob": os.urandom(payload).hex()} if payload else {}
                    with self._tracer.start_as_current_span(f"llm {i}", attributes={
                            **attributes, **extra, "gen_ai.usage.input_tokens": tokens_in,
                            "gen_ai.usage.output_tokens": tokens_out}):
                        pass
                    want.input_tokens += tokens_in
                    want.output_tokens += tokens_out
            want.spans += spans_each
        return list(self._memory.get_finished_spans())

    def users_sessions(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for sid, want in self.expected.items():
            out.setdefault(want.user, set()).add(sid)
        return out

    def threads_sessions(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for sid, want in self.expected.items():
            out.setdefault(want.thread, set()).add(sid)
        return out


def body_of(spans: list[ReadableSpan]) -> bytes:
    """The OTLP request the stock exporters send for ``spans`` (serialized protobuf)."""
    return encode_spans(spans).SerializeToString()


# --- raw clients: the status the service answers --------------------------------------------

@dataclass
class Answer:
    """One raw export: HTTP status (or gRPC code name), the delay asked for, the message."""

    status: int | str
    retry_after: float | None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (200, "OK")


def grpc_export(endpoint: str, body: bytes, timeout: float = 20) -> Answer:
    """Send ``body`` once on OTLP/gRPC; the code, and the RetryInfo delay of the status details."""
    with grpc.insecure_channel(endpoint) as channel:
        try:
            channel.unary_unary(EXPORT)(body, timeout=timeout)
            return Answer("OK", None)
        except grpc.RpcError as failure:
            delay = None
            details = dict(failure.trailing_metadata() or ()).get("grpc-status-details-bin")
            if details:
                for detail in status_pb2.Status.FromString(details).details:
                    info = error_details_pb2.RetryInfo()
                    if detail.Unpack(info):
                        delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            return Answer(failure.code().name, delay, failure.details() or "")


def http_export(http_url: str, body: bytes, timeout: float = 20) -> Answer:
    """Send ``body`` once on OTLP/HTTP (protobuf); the status and its Retry-After."""
    request = urllib.request.Request(http_url + "/v1/traces", data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, None)
    except urllib.error.HTTPError as failure:
        retry_after = failure.headers.get("Retry-After")
        message = status_pb2.Status.FromString(failure.read()).message
        return Answer(failure.code, float(retry_after) if retry_after else None, message)


def assert_retryable(answer: Answer) -> None:
    """The answer OTLP exporters retry: 503 with Retry-After, or UNAVAILABLE with RetryInfo."""
    if isinstance(answer.status, int):
        assert answer.status == 503 and answer.retry_after and answer.retry_after >= 1, answer
    else:
        assert answer.status == "UNAVAILABLE" and answer.retry_after and answer.retry_after >= 1, answer
    assert "unavailable" in answer.message, answer


def get_json(url: str, timeout: float = 20) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as failure:
        return failure.code, json.loads(failure.read() or b"{}")


def readyz(http_url: str) -> int:
    return get_json(http_url + "/readyz")[0]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


_REQUESTS = re.compile(r'^otel_sessions_export_requests_total\{([^}]*)\} (\S+)$', re.M)


def request_counts(http_url: str) -> dict[tuple[str, str], float]:
    """``otel_sessions_export_requests_total`` by (transport, outcome), from ``/metrics``."""
    with urllib.request.urlopen(http_url + "/metrics", timeout=20) as response:
        text = response.read().decode()
    counts = {}
    for labels, value in _REQUESTS.findall(text):
        label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[(label["transport"], label["outcome"])] = float(value)
    return counts


def counts_delta(before: dict, after: dict) -> dict[tuple[str, str], float]:
    return {key: after.get(key, 0) - before.get(key, 0) for key in set(before) | set(after)
            if after.get(key, 0) != before.get(key, 0)}


# --- what must be stored ---------------------------------------------------------------------

def session_state(admin: redis.Redis, session_id: str, prefix: str = "ots") -> dict:
    """The raw figures of one session in Redis: the summary's counts, the spans its chunks
    hold (from each chunk's header), how many of the session's own keys exist, whether it is
    in each index. Only the summary and the chunk list are read by layout; the other keys of
    the session (digests...) are only counted."""
    keys = Keys(prefix)
    session_keys = keys.session(session_id)
    sum_key, chunks_key = session_keys[:2]
    summary = {k.decode(): v.decode(errors="replace") for k, v in admin.hgetall(sum_key).items()}
    chunks = admin.lrange(chunks_key, 0, -1)
    shard = session_shard(session_id)
    user, thread = summary.get(Field.USER), summary.get(Field.THREAD)
    return {
        "exists": bool(summary),
        "keys": admin.exists(*session_keys),
        "spans": int(summary.get(Field.SPANS, 0)),
        "stored": int(summary.get(Field.STORED, 0)),
        "traces": int(summary.get(Field.TRACES, 0)),
        "in": int(summary.get(Field.INPUT, 0)),
        "out": int(summary.get(Field.OUTPUT, 0)),
        "chunk_spans": sum(struct.unpack(">I", chunk[1:5])[0] for chunk in chunks),
        "seen": admin.zscore(keys.seen(shard), session_id) is not None,
        "user_index": bool(user) and admin.zscore(keys.user(shard, user), session_id) is not None,
        "thread_index": bool(thread) and admin.zscore(keys.thread(shard, thread), session_id) is not None,
    }


def assert_whole_or_absent(admin: redis.Redis, workload: Workload) -> dict[str, dict]:
    """Every session is either absent (none of its keys exists) or consistent in itself: its
    summary counts exactly the spans its chunks hold (no half-written session that a retry
    would complete twice), and no more than were sent. Returns the states."""
    states = {}
    for sid in workload.expected:
        state = states[sid] = session_state(admin, sid)
        if state["exists"]:
            assert state["spans"] == state["stored"] == state["chunk_spans"], (sid, state)
            assert state["spans"] <= workload.expected[sid].spans, (sid, state)
        else:
            assert state["keys"] == 0 and state["chunk_spans"] == 0, (sid, state)
    return states


#: A bug of ``store/sessions.py`` (reported, not fixed here): ``SessionStore._index_calls``
#: records a user / thread / name index entry as refreshed (``_index_due``) before the index
#: update runs. When that update fails (refused, or timed out and never run), the retry, within
#: half the index slack (30 s by default), leaves those entries out: the session is listed by
#: ``GET /v1/sessions`` with exact figures but is missing from its user's, thread's and name's
#: index. Tests that meet it end as xfail naming the sessions; set this to False once the
#: store records an entry only after the update succeeded, and every check is strict again.
KNOWN_INDEX_REFRESH_BUG = False
_USER_THREAD = {"user_index", "thread_index"}


def assert_stored_exactly_once(http_url: str, admin: redis.Redis, workload: Workload,
                               unindexed: set[str] | None = None) -> None:
    """Every session of ``workload`` holds exactly its spans, traces and tokens (Redis and the
    REST detail), is listed by ``GET /v1/sessions``, under its user and its thread, and in
    every index; nothing else is listed.

    With ``unindexed`` (a set) and :data:`KNOWN_INDEX_REFRESH_BUG`, a session that is right in
    everything but missing from its user / thread / name index is added to it instead of
    failing, and left out of the user and thread lists compared."""
    tolerate = unindexed is not None and KNOWN_INDEX_REFRESH_BUG
    for sid, want in workload.expected.items():
        state = session_state(admin, sid)
        wanted = {"exists": True, "spans": want.spans, "stored": want.spans, "traces": want.traces,
                  "in": want.input_tokens, "out": want.output_tokens, "chunk_spans": want.spans,
                  "seen": True, "user_index": True, "thread_index": True}
        wrong = {key: state[key] for key in wanted if state[key] != wanted[key]}
        if tolerate and wrong and set(wrong) <= _USER_THREAD:
            unindexed.add(sid)
        else:
            assert not wrong, f"session {sid}: {wrong}, wanted {({key: wanted[key] for key in wrong})}"
        status, detail = get_json(f"{http_url}/v1/sessions/{sid}")
        assert status == 200, (sid, detail)
        got = {k: detail[k] for k in ("span_count", "trace_count", "input_tokens", "output_tokens", "user_id",
                                      "thread_id", "name")}
        assert got == {"span_count": want.spans, "trace_count": want.traces, "input_tokens": want.input_tokens,
                       "output_tokens": want.output_tokens, "user_id": want.user, "thread_id": want.thread,
                       "name": want.name}, sid
    listed = list_ids(f"{http_url}/v1/sessions")
    assert sorted(listed) == sorted(workload.expected), "GET /v1/sessions"
    missing = unindexed if tolerate else set()
    for user, sessions in workload.users_sessions().items():
        assert sorted(list_ids(f"{http_url}/v1/users/{user}/sessions")) == sorted(sessions - missing), user
        assert sorted(list_ids(f"{http_url}/v1/sessions?user_id={user}")) == sorted(sessions - missing), user
    for thread, sessions in workload.threads_sessions().items():
        status, body = get_json(f"{http_url}/v1/threads/{thread}?limit=500")
        assert status == 200 and sorted(s["id"] for s in body["data"]) == sorted(sessions - missing), thread


def xfail_if_unindexed(unindexed: set[str]) -> None:
    """End the test as xfail when it met :data:`KNOWN_INDEX_REFRESH_BUG` (every other check passed)."""
    if unindexed:
        pytest.xfail(f"known store bug (KNOWN_INDEX_REFRESH_BUG): listed but missing from their user, "
                     f"thread and name index after a retried index update: {sorted(unindexed)}")


def list_ids(url: str) -> list[str]:
    """Every session id a list route returns, page after page."""
    ids: list[str] = []
    separator = "&" if "?" in url else "?"
    while True:
        status, body = get_json(f"{url}{separator}limit=500&offset={len(ids)}")
        assert status == 200, (url, body)
        ids += [s["id"] for s in body["data"]]
        if len(ids) >= body["total"] or not body["data"]:
            return ids


# --- the stock exporters, sending from threads -------------------------------------------------

class Senders:
    """Stock OTLP exporters, one thread each ("grpc" or "http"), each sending its batches in
    order, ``gap`` seconds apart; the exporters retry as they do in any application."""

    def __init__(self, service, plans: list[tuple[str, list[list[ReadableSpan]]]], timeout: float = 30,
                 gap: float = 0.0) -> None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        self.exporters = [GrpcExporter(endpoint=service.grpc_endpoint, insecure=True, timeout=timeout)
                          if kind == "grpc" else HttpExporter(endpoint=service.http_url + "/v1/traces",
                                                              timeout=timeout)
                          for kind, _batches in plans]
        self.plans = plans
        self.gap = gap
        self.results: list[list] = [[] for _ in plans]
        self.threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(len(plans))]

    def _send(self, index: int) -> None:
        for batch in self.plans[index][1]:
            self.results[index].append(self.exporters[index].export(batch))
            time.sleep(self.gap)

    def start(self) -> Senders:
        for thread in self.threads:
            thread.start()
        return self

    def join(self, timeout: float) -> list[list]:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in self.threads), "an exporter is still sending"
        for exporter in self.exporters:
            exporter.shutdown()
        return self.results

    def all_succeeded(self) -> bool:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return all(result == [SpanExportResult.SUCCESS] * len(batches)
                   for result, (_kind, batches) in zip(self.results, self.plans))


# --- one scenario: Redis refuses writes for a while, then takes them again ----------------------

KINDS = ("grpc", "http", "grpc", "http", "grpc", "http")


def refuse_then_recover(redis_: FaultyRedis, service, workload: Workload, condition: Condition) -> None:
    """Stock exporters (three gRPC, three HTTP, four requests of ten sessions each, 60 sessions
    shared between them) send while ``condition`` has Redis refuse writes; raw requests show
    the retryable status naming it; ``/readyz`` answers 503 naming it; nothing is
    half-written; the metrics count "unavailable", never "internal". After it ends,
    ``/readyz`` is 200, the exporters' retries succeed, the raw requests sent again succeed,
    and everything is stored exactly once."""
    first = max([int(sid.rsplit("s", 1)[1]) for sid in workload.expected] or [-1]) + 1
    plans = [(kind, [workload.batch([first + (s * 11 + b * 5 + k) % 60 for k in range(10)]) for b in range(4)])
             for s, kind in enumerate(KINDS)]
    raw_grpc = body_of(workload.batch([first + 60, first + 61, first + 1]))
    raw_http = body_of(workload.batch([first + 62, first + 2]))
    before_states = {sid: session_state(redis_.admin, sid) for sid in workload.expected}
    before = request_counts(service.http_url)

    condition.refuse()
    senders = Senders(service, plans, timeout=30).start()
    try:
        for _ in range(2):  # the raw status, not only what the exporters make of it
            for answer in (grpc_export(service.grpc_endpoint, raw_grpc), http_export(service.http_url, raw_http)):
                assert_retryable(answer)
                assert f"({condition.code})" in answer.message, answer
        assert get_json(service.http_url + "/readyz") == (503, {"status": "not ready", "redis": condition.ready_state,
                                                               "condition": condition.code})

        def refused_twice_each() -> bool:
            delta = counts_delta(before, request_counts(service.http_url))
            return all(delta.get((kind, "unavailable"), 0) >= 3 * 2 + 2 for kind in ("grpc", "http"))

        wait_until(refused_twice_each, 20, "every exporter to be refused twice")
        if condition.readable:  # nothing was half-written: what existed is unchanged, nothing new exists
            assert assert_whole_or_absent(redis_.admin, workload) == before_states
        assert readyz(service.http_url) == 503
    finally:
        condition.recover()
    wait_until(lambda: readyz(service.http_url) == 200, 15, "/readyz to answer 200")
    senders.join(60)
    assert senders.all_succeeded(), senders.results
    assert grpc_export(service.grpc_endpoint, raw_grpc).ok
    assert http_export(service.http_url, raw_http).ok

    assert_stored_exactly_once(service.http_url, redis_.admin, workload)

    def counted() -> dict:  # a request is counted just after its answer is sent
        return counts_delta(before, request_counts(service.http_url))

    wait_until(lambda: counted().get(("grpc", "ok")) == counted().get(("http", "ok")) == 3 * 4 + 1, 5,
               "every stored request to be counted once")
    delta = counted()
    assert set(delta) == {(kind, outcome) for kind in ("grpc", "http") for outcome in ("ok", "unavailable")}, delta
