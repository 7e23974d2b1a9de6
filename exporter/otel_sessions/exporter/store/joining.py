"""Trace joining: which session a trace belongs to, through the trace map in Redis
(``join_traces.lua``) and a process-local cache of the claims this process made.

A span that names no session joins the session its trace names, whichever request or
receiver that comes from: the first span naming a session *claims* the trace (the first
claim wins), spans without one are *parked* under the trace until it is claimed. Log records
join the same way, through the same map: a record naming a session claims its trace too, and
records without one are parked in a list of their own (``Keys.trace_log_pending``), adopted
with the trace's parked spans when it is claimed. The map
lives in small hashes per epoch (an eighth of the retention) and bucket, and expires a whole
epoch at a time (``keys.trace_epoch_ms``; ``docs/storage.md``, trace joining).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.store.codec import decode_chunks, dedupe_spans
from otel_sessions.exporter.store.gateway import RedisGateway
from otel_sessions.exporter.store.keys import INDEX_SHARDS, PARKED_TRACES, Keys, trace_epoch_ms, trace_shard
from otel_sessions.exporter.store.records import JoinReply, TraceJoin

__all__ = ["TraceJoining"]

#: (trace id, operation "c" claim, "p" park spans or "l" park log records, session id or chunk),
#: by trace shard
JoinOps = dict[int, list[tuple[bytes, str, Any]]]


class TraceJoining:
    """Claims, parking and trace lookups of one process (safe for use from one event loop)."""

    def __init__(self, gateway: RedisGateway, keys: Keys, retention_ms: int, claims_cached: int = 100_000) -> None:
        self.gateway = gateway
        self.keys = keys
        self.retention_ms = retention_ms
        self.epoch_ms = trace_epoch_ms(retention_ms)
        self.script = gateway.script("join_traces")
        # trace id -> (session, epoch), for traces this process claimed in the current epoch:
        # spans without a session of those traces go straight into their session
        self._claimed: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
        self._claimed_max = claims_cached
        #: traces kept per shard in the parked-trace index (the newest win)
        self.parked_traces_max = PARKED_TRACES

    def known_owner(self, trace_id: bytes, now_ms: int) -> str | None:
        """The session this process claimed ``trace_id`` for in the current epoch, if any: its
        orphan spans can be written straight into it."""
        owner, epoch = self._claimed.get(trace_id, (None, None))
        return owner if epoch == now_ms // self.epoch_ms else None

    def calls(self, join: TraceJoin, now_ms: int) -> tuple[JoinOps, list[tuple[list, list]]]:
        """The operations ``join`` needs and the ``join_traces.lua`` calls (keys, args) making them."""
        epoch = now_ms // self.epoch_ms
        ops = self._ops(join, epoch)
        return ops, self._calls(ops, epoch, now_ms)

    def _ops(self, join: TraceJoin, epoch: int) -> JoinOps:
        """Trace claims to make, spans and log records to park, by trace shard."""
        ops: dict[int, list[tuple[bytes, str, Any]]] = {}
        # Every request claims the traces it names, also those this process claimed before: a
        # claim costs Redis little, and a map that lost its data (a flush, a restart without the
        # append-only file) is then mended by the next request instead of after the epoch.
        for trace_id, session_id in join.claims.items():
            ops.setdefault(trace_shard(trace_id), []).append((trace_id, "c", session_id))
        for trace_id, chunk in join.parked.items():
            ops.setdefault(trace_shard(trace_id), []).append((trace_id, "p", chunk))
        for trace_id, chunk in join.parked_logs.items():
            ops.setdefault(trace_shard(trace_id), []).append((trace_id, "l", chunk))
        return ops

    def _calls(self, ops: JoinOps, epoch: int, now_ms: int) -> list[tuple[list, list]]:
        """``join_traces.lua`` calls for the traces of every trace shard."""
        trace_map = self.keys.trace_map
        blocks = []
        for entries in ops.values():
            keys: list[Any] = []
            args: list[Any] = []
            for trace_id, op, value in entries:
                keys += [trace_map(trace_id, epoch), trace_map(trace_id, epoch - 1), self.keys.trace_pending(trace_id),
                         self.keys.parked_traces(trace_shard(trace_id)), self.keys.trace_log_pending(trace_id)]
                args += [trace_id, op, value]
            blocks.append((keys, args))
        bucket_ttl = (epoch + 1) * self.epoch_ms - now_ms + self.retention_ms
        return self.gateway.slot_calls([bucket_ttl, self.retention_ms, now_ms, self.parked_traces_max], blocks)

    def decode(self, ops: JoinOps, replies: list[Any], now_ms: int) -> JoinReply:
        """What the replies of :meth:`calls`' calls say (and remember the claims)."""
        epoch = now_ms // self.epoch_ms
        out = JoinReply()
        answers = iter([answer for reply in replies for answer in reply])
        for entries in ops.values():
            for trace_id, op, _value in entries:
                answer = next(answers)
                if op == "c":
                    owner = answer[0].decode()
                    out.owners[trace_id] = owner
                    span_chunks = int(answer[1])
                    parked, parked_logs = answer[2:2 + span_chunks], answer[2 + span_chunks:]
                    if parked:
                        out.adopt.append((owner, parked))
                        out.trims.append((trace_id, len(parked)))
                    if parked_logs:
                        out.adopt_logs.append((owner, parked_logs))
                        out.log_trims.append((trace_id, len(parked_logs)))
                    if not parked and not parked_logs:
                        self._remember(trace_id, owner, epoch)
                    # else not remembered: until they are stored, a retry must claim again to
                    # get them back
                elif answer:
                    owner = answer[0].decode()
                    self._remember(trace_id, owner, epoch)
                    out.owners[trace_id] = owner
                elif op == "l":
                    out.parked_logs.add(trace_id)
                else:
                    out.parked.add(trace_id)
        return out

    def _remember(self, trace_id: bytes, session_id: str, epoch: int) -> None:
        self._claimed[trace_id] = (session_id, epoch)
        if len(self._claimed) > self._claimed_max:
            self._claimed.popitem(last=False)

    async def get_trace_session(self, trace_id: bytes) -> str | None:
        """The session a trace joined, when any span of it named one (newest epoch first)."""
        return (await self.get_trace_sessions([trace_id])).get(trace_id)

    async def get_trace_sessions(self, trace_ids: Iterable[bytes], since_ms: int | None = None) -> dict[bytes, str]:
        """trace id (16 bytes) -> the session it joined, for the given traces that joined one.

        Each trace is read from the trace map newest epoch first, over the retention, or with
        ``since_ms`` (Unix ms) only over the epochs from the one before ``since_ms``'s on
        (a claim made since then is in one of them: a claim carries an entry of the previous
        epoch into the current one). One pipeline; raises :class:`StoreUnavailable`."""
        traces = list(dict.fromkeys(trace_ids))
        if not traces:
            return {}
        now_ms = int(time.time() * 1000)
        newest = now_ms // self.epoch_ms
        start_ms = now_ms - self.retention_ms if since_ms is None else min(since_ms, now_ms)
        oldest = start_ms // self.epoch_ms - 1
        epochs = range(newest, oldest - 1, -1)

        def fill(pipe) -> None:
            for trace_id in traces:
                for epoch in epochs:
                    pipe.hget(self.keys.trace_map(trace_id, epoch), trace_id)

        replies = iter(await self.gateway.run(fill))
        out: dict[bytes, str] = {}
        for trace_id in traces:
            value = next((v for v in [next(replies) for _ in epochs] if v), None)
            if value:
                out[trace_id] = value.decode()
        return out

    async def get_parked_spans(self, trace_id: bytes) -> TracesData:
        """Spans of a trace that never named a session (kept by trace id for lookups)."""
        chunks = await self.gateway.call("lrange", self.keys.trace_pending(trace_id), 0, -1)
        return dedupe_spans(TracesData.FromString(decode_chunks(chunks)))

    async def recent_parked_traces(self, limit: int, since_ms: float | None = None) -> list[bytes]:
        """Up to ``limit`` trace ids (16 bytes) of traces that have parked spans (none of their
        spans named a session), newest last park first, parked within the retention and at
        or after ``since_ms`` (unix ms), merged over the trace shards' parked-trace indexes."""
        low = time.time() * 1000 - self.retention_ms
        if since_ms is not None:
            low = max(low, since_ms)

        def fill(pipe) -> None:
            for shard in range(INDEX_SHARDS):
                pipe.zrevrangebyscore(self.keys.parked_traces(shard), "+inf", low, start=0, num=limit,
                                      withscores=True)

        merged = sorted(((score, member) for reply in await self.gateway.run(fill) for member, score in reply),
                        reverse=True)
        return [member for _score, member in merged[:limit] if len(member) == 16]

    async def parked_spans_of(self, trace_ids: list[bytes]) -> list[TracesData]:
        """:meth:`get_parked_spans` of many traces in one pipeline (an empty ``TracesData`` for
        a trace whose spans were adopted by a session or expired)."""
        if not trace_ids:
            return []

        def fill(pipe) -> None:
            for trace_id in trace_ids:
                pipe.lrange(self.keys.trace_pending(trace_id), 0, -1)

        return [dedupe_spans(TracesData.FromString(decode_chunks(chunks))) if chunks else TracesData()
                for chunks in await self.gateway.run(fill)]
