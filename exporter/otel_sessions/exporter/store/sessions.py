"""The Redis session store: writes what the ingest path grouped, reads sessions back.

Write path of one export request, driven by the ingestor (``ingest/ingestor.py``), in two
round trips (trace joining itself is in ``joining.py``):

1. :meth:`SessionStore.write`: the trace claims and parked spans of a :class:`TraceJoin`
   (``join_traces.lua``, one call per trace shard) and the :class:`SessionWrite` records
   (``write_session.lua``: up to :data:`SESSIONS_PER_CALL` sessions per call on one Redis, one
   per call on a cluster; atomic per session, idempotent, sliding TTL), in one pipeline. The
   replies come back as data: which traces belong to which session, which spans parked
   earlier must be written into a session now, and each session write's :class:`SessionReply`.
   The ingestor regroups what must be written again and calls :meth:`write` once more.
2. :meth:`SessionStore.finish`: one ``update_indexes.lua`` call per index shard with the
   figures the session writes returned (also for writes that were all duplicates, so a write
   that landed after a timeout is still listed), and the trimming of parked spans now stored.

Log records take the same path: a :class:`LogWrite` is written by ``write_logs.lua`` in the
same pipeline as the span writes (``logs.py``), log records waiting by trace are parked and
adopted by the same ``join_traces.lua`` calls, and the sessions they touch are indexed alike.

Every step is idempotent, so a request that fails anywhere is safely retried by the exporter
(:class:`StoreUnavailable` is answered as retryable). Nothing is acknowledged before step 2.
All Redis traffic goes through the :class:`RedisGateway`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.errors import StoreUnavailable
from otel_sessions.exporter.store.codec import chunk_traces, decode_chunks, dedupe_spans
from otel_sessions.exporter.store.gateway import RedisGateway
from otel_sessions.exporter.store.joining import TraceJoining
from otel_sessions.exporter.store.keys import INDEX_SHARDS, Keys, session_shard
from otel_sessions.exporter.store.logs import LogStore
from otel_sessions.exporter.store.records import (
    JoinReply,
    LogWrite,
    SessionFigures,
    SessionReply,
    SessionWrite,
    TraceJoin,
)
from otel_sessions.exporter.store.redis_client import connect
from otel_sessions.exporter.store.summary import SessionSummary, TraceSummary

__all__ = ["SessionStore", "StoreSettings", "StoreUnavailable", "SESSIONS_PER_CALL", "CALL_CHUNK_BYTES"]

#: Most sessions one ``write_session.lua`` call writes on one Redis. Fewer, larger calls cost
#: Redis less per span (one command, one reply and one MULTI/EXEC in the append-only file per
#: call instead of per session: 16% less Redis CPU for the session writes of
#: ``bench/ingest.py``'s requests, about 50 sessions each); the bound keeps one call short
#: (about 2 ms of Redis time at 64 sessions of 10 spans), as other clients wait while it runs.
SESSIONS_PER_CALL = 64
#: A call takes no more sessions once it holds this many bytes of chunks. Redis judges
#: ``maxmemory`` once per script call, before it runs: so a write runs at most about this far
#: past the limit (plus one session), and sessions written before memory ran out stay whole
#: and the others absent, as with one call per session.
CALL_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class StoreSettings:
    """The store's slice of the service settings (durations in seconds)."""

    key_prefix: str
    retention_s: float
    thread_idle_s: float
    idle_after_s: float
    abandon_after_s: float
    max_spans_per_session: int
    publish_tail: bool = True
    max_logs_per_session: int = 100_000


class SessionStore:
    """Sessions in Redis. One instance per process; safe for concurrent use from one event loop."""

    def __init__(self, gateway: RedisGateway, settings: StoreSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.retention_ms = int(settings.retention_s * 1000)
        self.thread_idle_ms = int(settings.thread_idle_s * 1000)
        self._write_session = gateway.script("write_session")
        self._update_indexes = gateway.script("update_indexes")
        self._delete_session = gateway.script("delete_session")
        # user/thread index entries this process wrote lately: (key, session) -> ms. Those keys
        # get a TTL longer by the slack, so refreshing them at most once per slack/2 is safe.
        self._index_slack_ms = min(60_000, self.thread_idle_ms // 4, self.retention_ms // 4)
        self._index_written: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.joining = TraceJoining(gateway, self.keys, self.retention_ms)
        # trace lookups, for the ingestor, forwarding and the Jaeger API
        self.known_owner = self.joining.known_owner
        self.get_trace_session = self.joining.get_trace_session
        self.get_trace_sessions = self.joining.get_trace_sessions
        self.get_parked_spans = self.joining.get_parked_spans
        self.recent_parked_traces = self.joining.recent_parked_traces
        self.parked_spans_of = self.joining.parked_spans_of
        #: the session's log records (write arguments, reads)
        self.logs = LogStore(gateway, self.keys, self.retention_ms, settings.max_logs_per_session,
                             settings.publish_tail)

    @classmethod
    def connect(cls, redis_url: str, settings: StoreSettings, cluster: bool = False) -> SessionStore:
        """A store on a new client for ``redis_url`` (call :meth:`load_scripts` before use)."""
        return cls(RedisGateway(connect(redis_url, cluster=cluster)), settings)

    # --- plumbing ---------------------------------------------------------------------------
    async def load_scripts(self) -> None:
        await self.gateway.load_scripts()

    async def ping(self) -> bool:
        return await self.gateway.ping()

    async def writable(self) -> bool:
        """True when Redis would take a write now (``/readyz``)."""
        return await self.gateway.writable(self.keys.ready_probe())

    async def close(self) -> None:
        await self.gateway.close()

    # --- write ------------------------------------------------------------------------------
    async def write(self, join: TraceJoin | None, sessions: list[SessionWrite | LogWrite],
                    now_ms: int) -> tuple[JoinReply, list[SessionReply]]:
        """Round trip 1: trace joining and session writes (of spans, or of log records) in one
        pipeline (see the module doc); one reply per write, in order.

        Raises :class:`StoreUnavailable` when Redis fails; nothing is half-applied that a
        retry would not complete."""
        ops, join_calls = self.joining.calls(join, now_ms) if join is not None else ({}, [])
        if not join_calls and not sessions:
            return JoinReply(), []
        # in the order given (a session's first-value-wins fields come from its first write):
        # each LogWrite as one write_logs.lua call, each run of SessionWrites in batched calls
        steps: list[tuple[str, Any]] = []  # ("log", LogWrite) or ("spans", (keys, args) of a call)
        run: list[SessionWrite] = []
        for write in [*sessions, None]:
            if type(write) is SessionWrite:
                run.append(write)
                continue
            steps += [("spans", call) for call in self._session_calls(run, now_ms)]
            run = []
            if write is not None:
                steps.append(("log", write))
        script = self._write_session

        def fill(pipe) -> None:
            for keys, args in join_calls:
                self.joining.script.queue(pipe, keys, args)
            for kind, step in steps:
                if kind == "log":
                    self.logs.queue_write(pipe, step, now_ms)
                else:
                    script.queue(pipe, step[0], step[1])

        replies = await self.gateway.run(fill)
        joined = self.joining.decode(ops, replies[:len(join_calls)], now_ms)
        out: list[SessionReply] = []
        for (kind, _step), reply in zip(steps, replies[len(join_calls):]):
            out += [SessionReply.decode(reply)] if kind == "log" else [SessionReply.decode(one) for one in reply]
        return joined, out

    def _session_calls(self, writes: list[SessionWrite], now_ms: int) -> list[tuple[list, list]]:
        """``write_session.lua`` calls (keys, args) for ``writes``, in order: on one Redis up to
        :data:`SESSIONS_PER_CALL` sessions and about :data:`CALL_CHUNK_BYTES` of chunks per
        call, on a cluster one session per call (each session is a slot); each call replies
        with one reply per session."""
        calls: list[tuple[list, list]] = []
        blocks: list[tuple[list, list]] = []
        size = 0
        for write in writes:
            keys = [*self.keys.session(write.session_id), *self.keys.session_logs(write.session_id)[1:]]
            args = self._session_args(now_ms, write)
            blocks.append((keys, [len(keys), len(args), *args]))
            size += len(write.chunk)
            if len(blocks) == SESSIONS_PER_CALL or size >= CALL_CHUNK_BYTES:
                calls += self.gateway.slot_calls([], blocks)
                blocks, size = [], 0
        return calls + self.gateway.slot_calls([], blocks)

    def _session_args(self, now_ms: int, w: SessionWrite) -> list[Any]:
        """ARGV of ``write_session.lua`` (see its header)."""
        args: list[Any] = [
            now_ms, self.retention_ms, self.settings.max_spans_per_session, w.flags, w.span_digests,
            w.trace_digests, w.markers, w.start_us, w.end_us,
            self.keys.tail_channel(w.session_id) if self.settings.publish_tail else "", w.chunk,
            len(w.counters), len(w.aggregates), len(w.once),
        ]
        for field_name, amount in w.counters:
            args += (field_name, repr(amount) if isinstance(amount, float) else amount)
        for marker, tin, tout, cost in w.aggregates:
            args += (marker, tin, tout, repr(cost))
        for pair in w.once:
            args += pair
        args += w.labels
        return args

    async def finish(self, stored: list[tuple[SessionWrite | LogWrite, SessionFigures]],
                     trims: list[tuple[bytes, int]], now_ms: int, log_trims: list[tuple[bytes, int]] = ()) -> None:
        """Round trip 2: the cross-session indexes of every session written (or found already
        written), and the trimming of parked spans (and log records) that were adopted."""
        if not stored and not trims and not log_trims:
            return
        per_shard: dict[int, dict[str, tuple[SessionWrite, SessionFigures]]] = {}
        for write, figures in stored:
            per_shard.setdefault(session_shard(write.session_id), {})[write.session_id] = (write, figures)
        refreshed: list[tuple[str, str]] = []
        calls = self._index_calls(per_shard, now_ms, refreshed)
        script = self._update_indexes

        def fill(pipe) -> None:
            for keys, args in calls:
                script.queue(pipe, keys, args)
            for trace_id, count in trims:
                pipe.ltrim(self.keys.trace_pending(trace_id), count, -1)
            for trace_id, count in log_trims:
                pipe.ltrim(self.keys.trace_log_pending(trace_id), count, -1)

        await self.gateway.run(fill)
        for entry in refreshed:  # only once they are written: a failed update is made again in full
            self._index_written[entry] = now_ms
            self._index_written.move_to_end(entry)
        while len(self._index_written) > 200_000:
            self._index_written.popitem(last=False)

    def _index_calls(self, per_shard: dict[int, dict[str, tuple[SessionWrite, SessionFigures]]],
                     now_ms: int, refreshed: list[tuple[str, str]]) -> list[tuple[list, list]]:
        """``update_indexes.lua`` calls for the sessions of every index shard; the user, thread
        and name entries they refresh are added to ``refreshed``."""
        blocks = []
        for shard, entries in per_shard.items():
            keys = self.keys.shard_indexes(shard)
            args: list[Any] = [len(entries)]
            for session_id, (write, f) in entries.items():
                mask = 0
                for bit, index_key in ((1, self.keys.user(shard, write.user_id) if write.user_id else None),
                                       (2, self.keys.thread(shard, write.thread_id) if write.thread_id else None)):
                    if index_key is not None and self._index_due(index_key, session_id, now_ms):
                        mask |= bit
                        keys.append(index_key)
                        refreshed.append((index_key, session_id))
                args += [session_id, mask, f.seen_ms or now_ms, f.start_us, f.end_us, f.end_us - f.start_us,
                         f.spans, f.traces, f.tokens, f.cost]
            blocks.append((keys, args))
        return self.gateway.slot_calls([now_ms, self.retention_ms, self.thread_idle_ms, self._index_slack_ms], blocks)

    def _index_due(self, key: str, session_id: str, now_ms: int) -> bool:
        """True when this (index, session) entry was not refreshed (successfully) in the last slack/2."""
        last = self._index_written.get((key, session_id))
        return last is None or now_ms - last >= self._index_slack_ms // 2

    # --- read -------------------------------------------------------------------------------
    def _now_ms(self) -> float:
        return time.time() * 1000

    def _summary(self, raw: dict[bytes, bytes], now_ms: float) -> SessionSummary:
        return SessionSummary.from_redis(raw, now_ms, self.settings.idle_after_s, self.settings.abandon_after_s)

    async def get_session(self, session_id: str, with_traces: bool = False) -> SessionSummary | None:
        """The session's summary (and its traces, in start order), or None when unknown."""
        sum_key, chunks_key = self.keys.session(session_id)[:2]

        def fill(pipe) -> None:
            pipe.hgetall(sum_key)
            if with_traces:
                pipe.lrange(chunks_key, 0, -1)

        replies = await self.gateway.run(fill)
        raw, chunks = replies[0], (replies[1] if with_traces else None)
        if not raw:
            return None
        summary = self._summary(raw, self._now_ms())
        if chunks is not None:
            summary.traces = sorted(
                (TraceSummary.from_figures(tid, figures) for tid, figures in chunk_traces(chunks).items()),
                key=lambda t: (t.start_us, t.trace_id),
            )
        return summary

    async def get_summaries(self, session_ids: list[str]) -> list[SessionSummary | None]:
        """Summaries of many sessions in one pipeline (None for sessions that expired)."""
        if not session_ids:
            return []

        def fill(pipe) -> None:
            for session_id in session_ids:
                pipe.hgetall(self.keys.summary(session_id))

        now = self._now_ms()
        return [self._summary(raw, now) if raw else None for raw in await self.gateway.run(fill)]

    async def get_spans(self, session_id: str) -> TracesData | None:
        """Every stored span of the session as one OTLP ``TracesData`` (duplicates removed);
        None when the session is unknown."""
        chunks_key = self.keys.session(session_id)[1]

        def fill(pipe) -> None:
            pipe.lrange(chunks_key, 0, -1)
            pipe.exists(self.keys.summary(session_id))

        chunks, exists = await self.gateway.run(fill)
        if not chunks:
            return TracesData() if exists else None
        return dedupe_spans(TracesData.FromString(decode_chunks(chunks)))

    async def get_spans_of(self, session_ids: list[str]) -> list[TracesData | None]:
        """:meth:`get_spans` of several sessions in one round trip, in the order given."""
        if not session_ids:
            return []

        def fill(pipe) -> None:
            for session_id in session_ids:
                pipe.lrange(self.keys.session(session_id)[1], 0, -1)
                pipe.exists(self.keys.summary(session_id))

        replies = await self.gateway.run(fill)
        out: list[TracesData | None] = []
        for chunks, exists in zip(replies[0::2], replies[1::2]):
            if not chunks:
                out.append(TracesData() if exists else None)
            else:
                out.append(dedupe_spans(TracesData.FromString(decode_chunks(chunks))))
        return out

    async def chunk_count(self, session_id: str) -> int:
        """Length of the session's chunk list (what the tail starts from)."""
        return int(await self.gateway.call("llen", self.keys.session(session_id)[1]))

    async def chunks(self, session_id: str, first: int, last: int) -> list[bytes]:
        """Chunks ``first..last`` (inclusive, negative from the end) of the session's list."""
        return await self.gateway.call("lrange", self.keys.session(session_id)[1], first, last)

    def tail_subscription(self):
        """A pub/sub subscription (see ``RedisGateway.subscription``) for :meth:`Keys.tail_channel`."""
        return self.gateway.subscription()

    def tail_channel(self, session_id: str) -> str:
        return self.keys.tail_channel(session_id)

    async def recent_session_ids(self, limit: int = 50, offset: int = 0) -> tuple[list[str], int]:
        """Session ids by last activity, newest first, merged over the index shards; and the total."""
        cutoff = self._now_ms() - self.retention_ms
        want = offset + limit

        def fill(pipe) -> None:
            for shard in range(INDEX_SHARDS):
                pipe.zrevrangebyscore(self.keys.seen(shard), "+inf", cutoff, start=0, num=want, withscores=True)
                pipe.zcount(self.keys.seen(shard), cutoff, "+inf")

        replies = await self.gateway.run(fill)
        merged: list[tuple[float, str]] = []
        total = 0
        for i in range(0, len(replies), 2):
            merged += [(score, member.decode()) for member, score in replies[i]]
            total += replies[i + 1]
        merged.sort(reverse=True)
        return [sid for _score, sid in merged[offset:want]], total

    async def indexed_sessions(self, kind: str, value: str, most: int) -> list[str]:
        """Up to ``most`` sessions per shard of the user's or thread's index (``kind`` is
        ``"user"`` or ``"thread"``), newest score first."""
        key_of = self.keys.user if kind == "user" else self.keys.thread

        def fill(pipe) -> None:
            for shard in range(INDEX_SHARDS):
                pipe.zrevrange(key_of(shard, value), 0, most - 1)

        return [member.decode() for reply in await self.gateway.run(fill) for member in reply]

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and its index entries at once; False when it did not exist."""
        shard = session_shard(session_id)

        def fill(pipe) -> None:
            keys = [*self.keys.session(session_id), *self.keys.session_logs(session_id)[1:],
                    self.keys.conversation(session_id)]
            self._delete_session.queue(pipe, keys, [])

        reply = (await self.gateway.run(fill))[0]
        if not reply:
            return False
        user, thread = (part.decode() for part in reply)
        for key in (self.keys.user(shard, user), self.keys.thread(shard, thread)):
            self._index_written.pop((key, session_id), None)

        def fill_indexes(pipe) -> None:
            for key in self.keys.shard_indexes(shard):
                pipe.zrem(key, session_id)
            if user:
                pipe.zrem(self.keys.user(shard, user), session_id)
            if thread:
                pipe.zrem(self.keys.thread(shard, thread), session_id)

        await self.gateway.run(fill_indexes)
        return True
