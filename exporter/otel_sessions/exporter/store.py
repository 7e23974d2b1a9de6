"""The Redis session store: writes batches grouped by session, reads sessions back.

Write path of one export request (:meth:`SessionStore.write`), three pipelined round trips:

1. *join* (only when needed): for each trace that names a session and is not yet known to
   this process, claim trace -> session (first claim wins) and collect spans parked earlier
   for that trace; for each trace with spans but no session, park them unless the trace's
   session is already known (``join_traces.lua``, one call per trace shard).
2. *sessions*: one ``write_session.lua`` call per session (atomic, idempotent, sliding TTL).
3. *indexes*: one ``update_indexes.lua`` call per index shard with the figures step 2
   returned, and trimming of parked spans that step 2 stored.

Every step is idempotent, so a request that fails anywhere is safely retried by the exporter
(the receiver answers UNAVAILABLE on :class:`StoreUnavailable`). Nothing is acknowledged
before step 3 succeeded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from redis import exceptions as redis_errors

from .batch import Batch, BatchBuilder, Group, Payload
from .keys import INDEX_SHARDS, Keys, session_shard, trace_epoch_ms, trace_shard
from .redis_client import connect
from .span_codec import chunk_traces, decode_chunks
from .summary import SessionSummary, TraceSummary

__all__ = ["SessionStore", "StoreUnavailable", "WriteResult", "connect"]

log = logging.getLogger(__name__)

_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    redis_errors.MasterDownError,
    OSError,
)


class StoreUnavailable(Exception):
    """Redis could not take the write or answer the read; the caller should retry later."""


@dataclass
class WriteResult:
    """What one :meth:`SessionStore.write` did."""

    sessions: int = 0
    spans_new: int = 0
    spans_duplicate: int = 0
    spans_parked: int = 0
    spans_joined: int = 0


def _load_lua(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text()


class _Script:
    def __init__(self, name: str) -> None:
        self.name = name
        self.source = _load_lua(name)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


class SessionStore:
    """Sessions in Redis. One instance per process; safe for concurrent use from one event loop.

    :param client: an asyncio Redis or RedisCluster client.
    :param retention_s: sliding TTL of every key of a session.
    :param thread_idle_s: TTL of a thread index, refreshed by each write to the thread.
    :param idle_after_s, abandon_after_s: status thresholds, applied at read time.
    :param max_spans_per_session: spans kept per session (oldest chunks dropped beyond it).
    """

    def __init__(
        self,
        client,
        *,
        keys: Keys | None = None,
        builder: BatchBuilder | None = None,
        retention_s: float = 86400.0,
        thread_idle_s: float = 3600.0,
        idle_after_s: float = 300.0,
        abandon_after_s: float = 1800.0,
        max_spans_per_session: int = 100_000,
        publish_tail: bool = True,
    ) -> None:
        self.client = client
        self.keys = keys or Keys()
        self.builder = builder or BatchBuilder()
        self.retention_ms = int(retention_s * 1000)
        self.thread_idle_ms = int(thread_idle_s * 1000)
        self.idle_after_s = idle_after_s
        self.abandon_after_s = abandon_after_s
        self.max_spans = max_spans_per_session
        self.publish_tail = publish_tail
        self._write_session = _Script("write_session.lua")
        self._update_indexes = _Script("update_indexes.lua")
        self._join_traces = _Script("join_traces.lua")
        self._delete_session = _Script("delete_session.lua")
        self._scripts = (self._write_session, self._update_indexes, self._join_traces, self._delete_session)
        # user/thread/name index entries this process wrote lately: (key, session) -> ms. Those keys
        # get a TTL longer by the slack, so refreshing them at most once per slack/2 is safe.
        self._index_slack_ms = min(60_000, self.thread_idle_ms // 4, self.retention_ms // 4)
        self._index_written: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.epoch_ms = trace_epoch_ms(self.retention_ms)
        # trace id -> (session, epoch), for traces this process claimed in the current epoch
        # (no need to claim them again in it)
        self._claimed: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
        self._claimed_max = 100_000

    # --- plumbing ---------------------------------------------------------------------------
    async def load_scripts(self) -> None:
        """Load every Lua script (a cluster client sends SCRIPT LOAD to every primary)."""
        for script in self._scripts:
            await self.client.script_load(script.source)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except _UNAVAILABLE:
            return False

    async def close(self) -> None:
        await self.client.aclose()

    @property
    def is_cluster(self) -> bool:
        return hasattr(self.client, "get_primaries")

    async def _run(self, fill) -> list[Any]:
        """Run the commands ``fill(pipe)`` queues, in order, and return their replies.

        On one Redis they go in one pipeline. redis-py refuses scripts in cluster pipelines,
        so on a cluster they run concurrently, each routed to its slot's primary. NOSCRIPT
        (a restarted or new primary) reloads the scripts once; every caller is idempotent.
        """
        for attempt in (1, 2):
            if self.is_cluster:
                commands = _CommandList()
                fill(commands)
                pending = commands.run(self.client)
            else:
                pipe = self.client.pipeline(transaction=False)
                fill(pipe)
                pending = pipe.execute()
            try:
                return await pending
            except redis_errors.NoScriptError:
                if attempt == 2:
                    raise
                await self.load_scripts()
            except _UNAVAILABLE as exc:
                raise StoreUnavailable(f"redis unavailable: {exc}") from exc
            except redis_errors.ResponseError as exc:
                if "NOSCRIPT" in str(exc) and attempt == 1:
                    await self.load_scripts()
                    continue
                if str(exc).startswith(("LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "OOM")):
                    raise StoreUnavailable(f"redis unavailable: {exc}") from exc
                raise
        raise AssertionError("unreachable")

    # --- write ------------------------------------------------------------------------------
    async def write(self, batch: Batch) -> WriteResult:
        """Store ``batch`` durably; raises :class:`StoreUnavailable` when Redis fails."""
        result = WriteResult()
        result.spans_joined += batch.join_local()
        now_ms = int(time.time() * 1000)

        # Round trip 1: trace claims and parking, with the session writes. Orphans that turn
        # out to belong to a known session, and spans parked earlier for the traces claimed
        # now, are written in a second round trip (rare).
        epoch = now_ms // self.epoch_ms
        join_ops = self._join_ops(batch, epoch, result)
        sessions = [(sid, group) for sid, group in batch.sessions.items() if group.spans]
        payloads = [group.payload() for _sid, group in sessions]
        join_calls = self._join_calls(join_ops, epoch, now_ms)

        def fill(pipe) -> None:
            for keys, args in join_calls:
                pipe.evalsha(self._join_traces.sha, len(keys), *keys, *args)
            self._queue_writes(pipe, now_ms, sessions, payloads)

        replies = await self._run(fill) if join_calls or sessions else []
        adopted: dict[str, Group] = {}
        trim_pending: list[tuple[str, int]] = []
        self._joined(batch, epoch, join_ops, replies[:len(join_calls)], adopted, trim_pending, result)
        written: dict[str, tuple[Group, Any]] = {}
        await self._settle(sessions, payloads, replies[len(join_calls):], now_ms, written, result)
        if adopted:
            more = list(adopted.items())
            more_payloads = [group.payload() for _sid, group in more]
            replies = await self._run(partial(self._queue_writes, now_ms=now_ms, sessions=more, payloads=more_payloads))
            await self._settle(more, more_payloads, replies, now_ms, written, result)
        result.sessions = len(written)
        if not written and not trim_pending:
            return result

        # Round trip 2: the cross-session indexes, from the figures the session writes returned.
        per_shard: dict[int, list[tuple[str, Group, Any]]] = {}
        for session_id, (group, reply) in written.items():
            per_shard.setdefault(session_shard(session_id), []).append((session_id, group, reply))
        calls = self._index_calls(per_shard, now_ms)

        def fill_indexes(pipe) -> None:
            for keys, args in calls:
                pipe.evalsha(self._update_indexes.sha, len(keys), *keys, *args)
            for key, count in trim_pending:
                pipe.ltrim(key, count, -1)

        await self._run(fill_indexes)
        return result

    async def _settle(self, sessions: list[tuple[str, Group]], payloads: list[Payload], replies: list[Any],
                      now_ms: int, written: dict[str, tuple[Group, Any]], result: WriteResult) -> None:
        """Account for session-write replies; resend groups whose spans were partly seen before.

        A write is all or nothing: when some of its spans were stored earlier (a retry that
        overlaps an earlier request) the script refuses it and names the new spans, and the
        group is sent again with only those. Each round stores or refuses at least one span
        more, so this ends.
        """
        while True:
            again: list[tuple[str, Group, Payload]] = []
            for (session_id, group), payload, reply in zip(sessions, payloads, replies):
                status = int(reply[0])
                if status > 0:
                    result.spans_new += status
                    result.spans_duplicate += group.span_count - status
                    written[session_id] = (group, reply)
                elif status == 0:
                    result.spans_duplicate += group.span_count
                else:
                    mask = reply[1]
                    ids = payload.span_ids
                    keep = {ids[i * 8:i * 8 + 8] for i in range(len(mask)) if mask[i] == 49}  # '1'
                    result.spans_duplicate += group.span_count - len(keep)
                    group = dataclasses.replace(group, spans=[s for s in group.spans if s[2] in keep])
                    again.append((session_id, group, group.payload()))
            if not again:
                return
            sessions = [(sid, group) for sid, group, _p in again]
            payloads = [p for _sid, _g, p in again]
            replies = await self._run(partial(self._queue_writes, now_ms=now_ms, sessions=sessions, payloads=payloads))

    def _queue_writes(self, pipe, now_ms: int, sessions: list[tuple[str, Group]], payloads: list[Payload]) -> None:
        """Queue one ``write_session.lua`` call per session on ``pipe``."""
        sha = self._write_session.sha
        for (session_id, group), payload in zip(sessions, payloads):
            pipe.evalsha(sha, 3, *self.keys.session(session_id), *self._session_args(now_ms, session_id, group,
                                                                                      payload))

    def _session_args(self, now_ms: int, session_id: str, group: Group, payload: Payload) -> list[Any]:
        """ARGV of ``write_session.lua`` (see its header)."""
        flags = ((1 if group.ended else 0) | (2 if group.escalated else 0) | (4 if payload.failed else 0)
                 | (8 if payload.cost_estimated else 0))
        _count, errors, tin, tout, cost, start, end = payload.totals
        return [
            now_ms, self.retention_ms, self.max_spans, session_id,
            group.name or "", group.user_id or "", group.thread_id or "", group.previous_id or "",
            flags, payload.span_ids, payload.trace_ids,
            errors, int(tin), int(tout), repr(cost), start, end,
            "\0".join(sorted(group.labels)), "\0".join(part for item in group.metadata.items() for part in item),
            self.keys.tail_channel(session_id) if self.publish_tail else "",
            payload.chunk,
        ]

    def _index_calls(self, per_shard: dict[int, list[tuple[str, Group, Any]]], now_ms: int) -> list[tuple[list, list]]:
        """``update_indexes.lua`` calls for the sessions of every index shard."""
        blocks = []
        for shard, entries in per_shard.items():
            keys = self.keys.shard_indexes(shard)
            args: list[Any] = [len(entries)]
            for session_id, group, reply in entries:
                _new, start, end, spans, traces, tokens, cost, seen = reply
                mask = 0
                for bit, index_key in ((1, self.keys.user(shard, group.user_id) if group.user_id else None),
                                       (2, self.keys.thread(shard, group.thread_id) if group.thread_id else None),
                                       (4, self.keys.name(shard, group.name) if group.name else None)):
                    if index_key is not None and self._index_due(index_key, session_id, now_ms):
                        mask |= bit
                        keys.append(index_key)
                args += [session_id, mask, seen or now_ms, start, end, end - start, spans, traces, tokens, cost]
            blocks.append((keys, args))
        return self._slot_calls([now_ms, self.retention_ms, self.thread_idle_ms, self._index_slack_ms], blocks)

    def _slot_calls(self, head: list[Any], blocks: list[tuple[list, list]]) -> list[tuple[list, list]]:
        """Script calls (keys, args) from blocks of one slot each: one call per block on a
        cluster, else one call with every block; ``head`` starts the args of each call."""
        if self.is_cluster:
            return [(keys, head + args) for keys, args in blocks]
        keys, args = [], list(head)
        for block_keys, block_args in blocks:
            keys += block_keys
            args += block_args
        return [(keys, args)] if keys else []

    def _join_ops(self, batch: Batch, epoch: int, result: WriteResult) -> dict[int, list[tuple[bytes, str, Any]]]:
        """Trace claims to make and orphans to park or resolve, by trace shard."""
        ops: dict[int, list[tuple[bytes, str, Any]]] = {}
        for trace_id, session_id in batch.trace_sessions.items():
            if self._claimed.get(trace_id) != (session_id, epoch):
                ops.setdefault(trace_shard(trace_id), []).append((trace_id, "c", session_id))
        for trace_id in list(batch.orphans):
            owner, claimed_in = self._claimed.get(trace_id, (None, None))
            if owner is not None and claimed_in == epoch:
                self._adopt(batch.sessions, owner, batch.orphans.pop(trace_id), result)
            else:
                ops.setdefault(trace_shard(trace_id), []).append((trace_id, "p", batch.orphans[trace_id]))
        return ops

    def _join_calls(self, ops: dict[int, list[tuple[bytes, str, Any]]], epoch: int,
                    now_ms: int) -> list[tuple[list, list]]:
        """``join_traces.lua`` calls for the traces of every trace shard."""
        trace_map = self.keys.trace_map
        blocks = []
        for entries in ops.values():
            keys: list[Any] = []
            args: list[Any] = []
            for trace_id, op, value in entries:
                keys += [trace_map(trace_id, epoch), trace_map(trace_id, epoch - 1), self.keys.trace_pending(trace_id)]
                args += [trace_id, op, value if op == "c" else value.payload().chunk]
            blocks.append((keys, args))
        bucket_ttl = (epoch + 1) * self.epoch_ms - now_ms + self.retention_ms
        return self._slot_calls([bucket_ttl, self.retention_ms], blocks)

    def _joined(self, batch: Batch, epoch: int, ops: dict[int, list[tuple[bytes, str, Any]]], replies: list[Any],
                adopted: dict[str, Group], trim_pending: list[tuple[str, int]], result: WriteResult) -> None:
        """Apply the join replies: remember claims, adopt parked spans and resolved orphans."""
        answers = iter([answer for reply in replies for answer in reply])
        for entries in ops.values():
            for trace_id, op, value in entries:
                answer = next(answers)
                if op == "c":
                    owner = answer[0].decode()
                    self._remember(trace_id, owner, epoch)
                    parked = answer[1:]
                    if parked:
                        self._adopt_parked(owner, parked, adopted, result)
                        trim_pending.append((self.keys.trace_pending(trace_id), len(parked)))
                elif answer:
                    owner = answer[0].decode()
                    self._remember(trace_id, owner, epoch)
                    self._adopt(adopted, owner, batch.orphans.pop(trace_id), result)
                else:
                    batch.orphans.pop(trace_id)
                    result.spans_parked += value.span_count

    def _index_due(self, key: str, session_id: str, now_ms: int) -> bool:
        """True when this (index, session) entry was not refreshed in the last slack/2."""
        entry = (key, session_id)
        last = self._index_written.get(entry)
        if last is not None and now_ms - last < self._index_slack_ms // 2:
            return False
        self._index_written[entry] = now_ms
        self._index_written.move_to_end(entry)
        if len(self._index_written) > 200_000:
            self._index_written.popitem(last=False)
        return True

    def _remember(self, trace_id: bytes, session_id: str, epoch: int) -> None:
        self._claimed[trace_id] = (session_id, epoch)
        if len(self._claimed) > self._claimed_max:
            self._claimed.popitem(last=False)

    @staticmethod
    def _adopt(groups: dict[str, Group], session_id: str, group: Group, result: WriteResult) -> None:
        target = groups.get(session_id)
        if target is None:
            target = groups[session_id] = Group()
        target.merge(group)
        result.spans_joined += group.span_count

    def _adopt_parked(self, session_id: str, chunks: list[bytes], groups: dict[str, Group],
                      result: WriteResult) -> None:
        """Spans parked before their trace named ``session_id`` join that session."""
        data = TracesData.FromString(decode_chunks(chunks))
        parked = self.builder.build(data.resource_spans, force_session=session_id)
        for sid, group in parked.sessions.items():
            self._adopt(groups, sid, group, result)

    # --- read -------------------------------------------------------------------------------
    def _now_ms(self) -> float:
        return time.time() * 1000

    async def get_session(self, session_id: str, with_traces: bool = False) -> SessionSummary | None:
        """The session's summary (and its traces, in start order), or None when unknown."""
        sum_key, chunks_key, _ids = self.keys.session(session_id)
        try:
            if with_traces:
                raw, chunks = await asyncio.gather(self.client.hgetall(sum_key), self.client.lrange(chunks_key, 0, -1))
            else:
                raw, chunks = await self.client.hgetall(sum_key), None
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        if not raw:
            return None
        summary = SessionSummary.from_redis(raw, self._now_ms(), self.idle_after_s, self.abandon_after_s)
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
        replies = await self._run(fill)
        return [
            SessionSummary.from_redis(raw, now, self.idle_after_s, self.abandon_after_s) if raw else None
            for raw in replies
        ]

    async def get_spans(self, session_id: str) -> TracesData | None:
        """Every stored span of the session as one OTLP ``TracesData`` (duplicates removed)."""
        _sum, chunks_key, _ids = self.keys.session(session_id)
        try:
            chunks = await self.client.lrange(chunks_key, 0, -1)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        if not chunks:
            return None if not await self.client.exists(self.keys.summary(session_id)) else TracesData()
        return dedupe_spans(TracesData.FromString(decode_chunks(chunks)))

    async def get_trace_session(self, trace_id: bytes) -> str | None:
        """The session a trace joined, when any span of it named one (newest epoch first)."""
        now_ms = int(self._now_ms())
        newest = now_ms // self.epoch_ms
        oldest = (now_ms - self.retention_ms) // self.epoch_ms - 1
        epochs = range(newest, oldest - 1, -1)

        def fill(pipe) -> None:
            for epoch in epochs:
                pipe.hget(self.keys.trace_map(trace_id, epoch), trace_id)

        value = next((v for v in await self._run(fill) if v), None)
        return value.decode() if value else None

    async def get_parked_spans(self, trace_id: bytes) -> TracesData:
        """Spans of a trace that never named a session (kept by trace id for lookups)."""
        chunks = await self.client.lrange(self.keys.trace_pending(trace_id), 0, -1)
        return dedupe_spans(TracesData.FromString(decode_chunks(chunks)))

    async def recent_session_ids(self, limit: int = 50, offset: int = 0) -> tuple[list[str], int]:
        """Session ids by last activity, newest first, merged over the index shards; and the total."""
        cutoff = self._now_ms() - self.retention_ms
        want = offset + limit

        def fill(pipe) -> None:
            for shard in range(INDEX_SHARDS):
                pipe.zrevrangebyscore(self.keys.seen(shard), "+inf", cutoff, start=0, num=want, withscores=True)
                pipe.zcount(self.keys.seen(shard), cutoff, "+inf")

        replies = await self._run(fill)
        merged: list[tuple[float, str]] = []
        total = 0
        for i in range(0, len(replies), 2):
            merged += [(score, member.decode()) for member, score in replies[i]]
            total += replies[i + 1]
        merged.sort(reverse=True)
        return [sid for _score, sid in merged[offset:want]], total

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and its index entries at once; False when it did not exist."""
        shard = session_shard(session_id)

        def fill(pipe) -> None:
            pipe.evalsha(self._delete_session.sha, 3, *self.keys.session(session_id))

        reply = (await self._run(fill))[0]
        if not reply:
            return False
        user, thread, name = (part.decode() for part in reply)
        for key in (self.keys.user(shard, user), self.keys.thread(shard, thread), self.keys.name(shard, name)):
            self._index_written.pop((key, session_id), None)

        def fill_indexes(pipe) -> None:
            for key in self.keys.shard_indexes(shard):
                pipe.zrem(key, session_id)
            if user:
                pipe.zrem(self.keys.user(shard, user), session_id)
            if thread:
                pipe.zrem(self.keys.thread(shard, thread), session_id)
            if name:
                pipe.zrem(self.keys.name(shard, name), session_id)

        await self._run(fill_indexes)
        return True


class _CommandList:
    """Records pipeline-style calls (``pipe.evalsha(...)``) to run them on a cluster client."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        def record(*args, **kwargs) -> _CommandList:
            self.calls.append((name, args, kwargs))
            return self

        return record

    async def run(self, client) -> list[Any]:
        return list(await asyncio.gather(*(getattr(client, name)(*args, **kwargs)
                                           for name, args, kwargs in self.calls)))


def dedupe_spans(data: TracesData) -> TracesData:
    """Drop repeated spans (same trace and span id) that partially retried writes stored twice."""
    seen: set[bytes] = set()
    duplicate = False
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                key = span.trace_id + span.span_id
                if key in seen:
                    duplicate = True
                seen.add(key)
    if not duplicate:
        return data
    return drop_seen_spans(data, set()) or TracesData()


def drop_seen_spans(data: TracesData, seen: set[bytes]) -> TracesData | None:
    """``data`` without spans whose trace and span id are in ``seen``, and without repeats;
    adds the ids it keeps to ``seen``. None when no span is left."""
    out = TracesData()
    for rs in data.resource_spans:
        keep_rs = None
        for ss in rs.scope_spans:
            fresh = []
            for span in ss.spans:
                key = span.trace_id + span.span_id
                if key not in seen:
                    seen.add(key)
                    fresh.append(span)
            if fresh:
                if keep_rs is None:
                    keep_rs = out.resource_spans.add(resource=rs.resource, schema_url=rs.schema_url)
                keep_rs.scope_spans.add(scope=ss.scope, schema_url=ss.schema_url, spans=fresh)
    return out if out.resource_spans else None

