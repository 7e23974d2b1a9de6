"""Live tail of a session: its spans as they arrive, from the moment of the call.

The write path (``write_session.lua``) publishes on ``Keys.tail_channel(session)`` the new
length of the session's chunk list after every write that stored new spans. A tail
subscribes first, then reads the list's length, so no write after the call is missed; on each
announcement it reads the chunks from the last length it knew (``LRANGE``). When the list
was trimmed (a session over ``--max-spans-per-session`` drops its oldest chunks, so lengths
stop growing) it reads the newest chunk. Spans are sent once: a tail remembers the ids it
sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from otel_sessions.exporter.store.codec import decode_chunks, drop_seen_spans
from otel_sessions.exporter.store.sessions import SessionStore

__all__ = ["SessionTail"]


class SessionTail:
    """Follows one session. ``await start()`` subscribes (from then on nothing is missed), then
    ``async for data in tail`` yields each write's new spans, or ``None`` after ``idle_s``
    seconds without any (so callers can send keep-alives); ``await close()`` when done.
    Redis faults raise :class:`~.errors.StoreUnavailable`."""

    def __init__(self, store: SessionStore, session_id: str, idle_s: float = 15.0) -> None:
        self.store = store
        self.session_id = session_id
        self.idle_s = idle_s
        self._subscription = store.tail_subscription()
        self._position = 0
        self._sent: set[bytes] = set()

    async def start(self) -> SessionTail:
        try:
            await self._subscription.subscribe(self.store.tail_channel(self.session_id))
            self._position = await self.store.chunk_count(self.session_id)
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        await self._subscription.close()

    async def __aiter__(self) -> AsyncIterator[TracesData | None]:
        while True:
            announced = await self._subscription.next_message(self.idle_s)
            if announced is None:
                yield None
                continue
            length = int(announced)
            if length > self._position:
                chunks = await self.store.chunks(self.session_id, self._position, length - 1)
                self._position = length
            else:  # the list was trimmed: the newest chunk holds this write
                chunks = await self.store.chunks(self.session_id, -1, -1)
            if chunks:
                fresh = drop_seen_spans(TracesData.FromString(decode_chunks(chunks)), self._sent)
                if fresh is not None:
                    yield fresh
