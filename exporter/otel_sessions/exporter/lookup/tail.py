"""Live tail of a session: its spans (and, when asked, its log records) as they arrive, from
the moment of the call.

The write path (``write_session.lua``) publishes on ``Keys.tail_channel(session)`` the new
length of the session's chunk list after every write that stored new spans;
``write_logs.lua`` publishes the new length of the log chunk list on
``Keys.log_tail_channel(session)``. A tail subscribes first (to both channels when it follows
logs), then reads the lists' lengths, so no write after the call is missed; on each
announcement it reads the chunks from the last length it knew (``LRANGE``). When a list was
trimmed (a session over ``--max-spans-per-session`` or ``--max-logs-per-session`` drops its
oldest chunks, so lengths stop growing) it reads the newest chunk. Spans and records are
sent once: a tail remembers what it sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from hashlib import blake2b

from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.store.codec import decode_chunks, drop_seen_spans
from otel_sessions.exporter.store.log_codec import decode_log_chunks
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["SessionTail", "drop_seen_records"]


class SessionTail:
    """Follows one session. ``await start()`` subscribes (from then on nothing is missed), then
    ``async for data in tail`` yields each write's new spans (``TracesData``) or, with
    ``logs=True``, new log records (``LogsData``), or ``None`` after ``idle_s`` seconds
    without any (so callers can send keep-alives); ``await close()`` when done.
    Redis faults raise :class:`~.errors.StoreUnavailable`."""

    def __init__(self, store: SessionStore, session_id: str, idle_s: float = 15.0, logs: bool = False) -> None:
        self.store = store
        self.session_id = session_id
        self.idle_s = idle_s
        self.logs = logs
        self._subscription = store.tail_subscription()
        self._channel = store.tail_channel(session_id).encode()
        self._log_channel = store.keys.log_tail_channel(session_id).encode()
        self._position = 0
        self._log_position = 0
        self._sent: set[bytes] = set()
        self._sent_records: set[bytes] = set()

    async def start(self) -> SessionTail:
        try:
            await self._subscription.subscribe(self._channel.decode())
            if self.logs:
                await self._subscription.subscribe(self._log_channel.decode())
                self._log_position = await self.store.logs.chunk_count(self.session_id)
            self._position = await self.store.chunk_count(self.session_id)
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        await self._subscription.close()

    async def __aiter__(self) -> AsyncIterator[TracesData | LogsData | None]:
        while True:
            event = await self._subscription.next_event(self.idle_s)
            if event is None:
                yield None
                continue
            channel, announced = event
            length = int(announced)
            if channel == self._log_channel:
                fresh = await self._new_records(length)
            else:
                fresh = await self._new_spans(length)
            if fresh is not None:
                yield fresh

    async def _new_spans(self, length: int) -> TracesData | None:
        if length > self._position:
            chunks = await self.store.chunks(self.session_id, self._position, length - 1)
            self._position = length
        else:  # the list was trimmed: the newest chunk holds this write
            chunks = await self.store.chunks(self.session_id, -1, -1)
        if not chunks:
            return None
        return drop_seen_spans(TracesData.FromString(decode_chunks(chunks)), self._sent)

    async def _new_records(self, length: int) -> LogsData | None:
        if length > self._log_position:
            chunks = await self.store.logs.chunks(self.session_id, self._log_position, length - 1)
            self._log_position = length
        else:
            chunks = await self.store.logs.chunks(self.session_id, -1, -1)
        if not chunks:
            return None
        return drop_seen_records(LogsData.FromString(decode_log_chunks(chunks)), self._sent_records)


def drop_seen_records(data: LogsData, seen: set[bytes]) -> LogsData | None:
    """``data`` without records whose digest is in ``seen`` (and without repeats); adds the
    digests of the records it keeps to ``seen``. None when no record is left."""
    out = LogsData()
    for rl in data.resource_logs:
        keep_rl = None
        for sl in rl.scope_logs:
            fresh = []
            for record in sl.log_records:
                key = blake2b(record.SerializeToString(), digest_size=8).digest()
                if key not in seen:
                    seen.add(key)
                    fresh.append(record)
            if fresh:
                if keep_rl is None:
                    keep_rl = out.resource_logs.add(resource=rl.resource, schema_url=rl.schema_url)
                keep_rl.scope_logs.add(scope=sl.scope, schema_url=sl.schema_url, log_records=fresh)
    return out if out.resource_logs else None
