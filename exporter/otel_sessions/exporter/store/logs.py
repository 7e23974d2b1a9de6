"""A session's log records in Redis: the arguments of ``write_logs.lua`` and the reads.

Writes go through :meth:`SessionStore.write <otel_sessions.exporter.store.sessions.SessionStore.write>`
(a :class:`~.records.LogWrite` is queued by :meth:`LogStore.queue_write` in the same
pipeline as the span writes and the trace joining); this module builds the script call and
reads the records back. Keys (``keys.py``): ``P:{S}:logs`` (compressed log chunks, oldest
first, ``log_codec.py``), ``P:{S}:logids`` (digests), the summary ``P:{S}:sum`` (fields
``logs``, ``lerr``, ``lmsg``, ``lstored``, ``ldropped``), ``P:{tj:N}:lp:TRACE`` (records
waiting by trace) and the pub/sub channel ``P:{S}:ltail``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

from otel_sessions.exporter.store.gateway import RedisGateway
from otel_sessions.exporter.store.keys import Keys
from otel_sessions.exporter.store.log_codec import decode_log_chunks
from otel_sessions.exporter.store.records import LogWrite

__all__ = ["LogStore", "ERROR_SEVERITY", "plain_value", "record_message"]

#: ``severity_number`` from which a record is an error (OpenTelemetry Logs data model: 17 = ERROR).
ERROR_SEVERITY = 17


def plain_value(value) -> Any:
    """An OTLP ``AnyValue`` as a plain JSON value: strings, numbers and booleans as they are,
    bytes as base64, arrays as lists, key-value lists as objects, an empty value as None."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def record_message(record) -> str:
    """A ``LogRecord``'s message: its body as text (a string as it is, other values as
    compact JSON), else, for a record without a body, its event name."""
    body = record.body
    kind = body.WhichOneof("value")
    if kind == "string_value":
        return body.string_value
    if kind is None:
        return record.event_name
    return json.dumps(plain_value(body), separators=(",", ":"), ensure_ascii=False)


class LogStore:
    """Log records of sessions, over the store's gateway and keys."""

    def __init__(self, gateway: RedisGateway, keys: Keys, retention_ms: int, max_logs_per_session: int,
                 publish_tail: bool = True) -> None:
        self.gateway = gateway
        self.keys = keys
        self.retention_ms = retention_ms
        self.max_logs = max_logs_per_session
        self.publish_tail = publish_tail
        self._write_logs = gateway.script("write_logs")

    def queue_write(self, pipe: Any, write: LogWrite, now_ms: int) -> None:
        """Queue the ``write_logs.lua`` call of ``write`` on ``pipe`` (its reply decodes as a
        :class:`~.records.SessionReply`)."""
        sum_key, logs_key, ids_key = self.keys.session_logs(write.session_id)
        span_keys = self.keys.session(write.session_id)[1:]
        args: list[Any] = [
            now_ms, self.retention_ms, self.max_logs, write.digests, write.start_us, write.end_us,
            self.keys.log_tail_channel(write.session_id) if self.publish_tail else "", write.chunk,
            write.errors, write.error_message, len(write.once),
        ]
        for pair in write.once:
            args += pair
        args += write.labels
        self._write_logs.queue(pipe, [sum_key, logs_key, ids_key, *span_keys], args)

    async def get_logs(self, session_id: str) -> LogsData | None:
        """Every stored log record of the session, as one OTLP ``LogsData`` (in arrival order,
        grouped by resource and scope per write); None when the session is unknown."""
        sum_key, logs_key, _ids = self.keys.session_logs(session_id)

        def fill(pipe) -> None:
            pipe.lrange(logs_key, 0, -1)
            pipe.exists(sum_key)

        chunks, exists = await self.gateway.run(fill)
        if not chunks:
            return LogsData() if exists else None
        return LogsData.FromString(decode_log_chunks(chunks))

    async def get_many(self, session_ids: list[str]) -> list[LogsData | None]:
        """:meth:`get_logs` of many sessions in one pipeline."""
        if not session_ids:
            return []

        def fill(pipe) -> None:
            for session_id in session_ids:
                sum_key, logs_key, _ids = self.keys.session_logs(session_id)
                pipe.lrange(logs_key, 0, -1)
                pipe.exists(sum_key)

        replies = await self.gateway.run(fill)
        out: list[LogsData | None] = []
        for i in range(0, len(replies), 2):
            chunks, exists = replies[i], replies[i + 1]
            out.append(LogsData.FromString(decode_log_chunks(chunks)) if chunks else (LogsData() if exists else None))
        return out

    async def chunk_count(self, session_id: str) -> int:
        """Length of the session's log chunk list (what a tail starts from)."""
        return int(await self.gateway.call("llen", self.keys.session_logs(session_id)[1]))

    async def chunks(self, session_id: str, first: int, last: int) -> list[bytes]:
        """Log chunks ``first..last`` (inclusive, negative from the end)."""
        return await self.gateway.call("lrange", self.keys.session_logs(session_id)[1], first, last)

    async def get_parked_logs(self, trace_id: bytes) -> LogsData:
        """Log records of a trace that never named a session (kept by trace id)."""
        chunks = await self.gateway.call("lrange", self.keys.trace_log_pending(trace_id), 0, -1)
        return LogsData.FromString(decode_log_chunks(chunks))
