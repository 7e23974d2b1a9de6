"""From OTLP log records to per-session write groups: the log receiver's hot path.

One pass over the records of a request finds each record's session, the same way as for
spans (``docs/conventions.md``; the same attribute names and precedence, ``attributes.py``):

* a record naming a session (``session.id`` or an alias, else ``gen_ai.conversation.id``) in
  its attributes, else in its resource's attributes, goes to it; a record that names a
  session and carries a trace id also claims that trace for the session, as a span does;
* a record without one goes to the session its trace names elsewhere in the request, else
  it waits by trace (an *orphan*, resolved by the store through the trace map the spans
  use, ``join_traces.lua``);
* a record with neither a session nor a trace id is counted and dropped (said in
  ``partial_success``); one whose trace or span id has the wrong length is refused.

Values are checked per record, as for spans: invalid ids are not used for grouping, a
severity number outside 0..24 counts as unspecified, times after 2255 (2^53 µs) are clamped, texts
lose control characters; each is counted and said in the response, and never costs the batch.
A group's records become one :class:`~.records.LogWrite`: an 8-byte digest per record
(:func:`record_digest`, mostly a hash of its serialized bytes: a retried request is stored once), the error count, the
first error's message and one compressed chunk (``store/log_codec.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from hashlib import blake2b
from typing import NamedTuple

from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from otel_sessions.exporter.ingest.grouping import MAX_TIME_US, _clean, _text
from otel_sessions.exporter.store.log_codec import encode_log_chunk
from otel_sessions.exporter.store.logs import ERROR_SEVERITY, record_message
from otel_sessions.exporter.store.records import LogWrite
from otel_sessions.exporter.store.schema import LABEL_KINDS
from otel_sessions.processor import attributes as attr

__all__ = ["record_digest", "LogRecordFacts", "LogGroup", "LogBatch", "LogBatchBuilder", "MAX_MESSAGE_LENGTH"]

#: Longest first-error message kept in the summary (characters).
MAX_MESSAGE_LENGTH = 512
_MAX_SEVERITY = 24
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_SERVICE = LABEL_KINDS["service"]

# attribute key -> (slot, rank); lower rank wins within a slot (the spans' precedence)
_S_SESSION, _S_THREAD, _S_USER, _S_NAME, _S_PREVIOUS = range(5)
_SLOTS: dict[str, tuple[int, int]] = {}
for _slot, _names in ((_S_SESSION, attr.SESSION_ID_ALIASES[:-1]), (_S_THREAD, attr.THREAD_ID_ALIASES),
                      (_S_USER, attr.USER_ID_ALIASES), (_S_NAME, attr.SESSION_NAME_ALIASES),
                      (_S_PREVIOUS, (attr.SESSION_PREVIOUS_ID,))):
    for _rank, _name in enumerate(_names):
        _SLOTS.setdefault(_name, (_slot, _rank))


def record_digest(body: bytes, trace_id: bytes, nanos: int) -> bytes:
    """8 bytes identifying a log record within a session (idempotency): 2 bytes from its trace
    and the second of its time (they choose the record's digest bucket in ``write_logs.lua``, so
    the records of one write share few buckets), then 6 bytes of a hash of its serialized bytes."""
    second = (nanos // 1_000_000_000).to_bytes(8, "big")
    return blake2b(trace_id + second, digest_size=2).digest() + blake2b(body, digest_size=6).digest()


class LogRecordFacts(NamedTuple):
    """One log record as the store needs it (values already validated)."""

    scope: tuple  # (resource bytes, resource schema_url, scope bytes, scope schema_url)
    body: bytes  # the serialized LogRecord
    digest: bytes  # record_digest(body, trace id, time)
    trace_id: bytes  # 16 bytes, or b"" for none
    time_us: int  # time_unix_nano, else observed_time_unix_nano, else arrival; µs
    error: bool  # severity_number >= 17
    message: str | None  # for an error record: its message, cleaned, <= 512 characters


@dataclass
class LogGroup:
    """Log records of one session (or, for orphans, of one trace) from one request."""

    records: list[LogRecordFacts] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)
    name: str | None = None
    user_id: str | None = None
    thread_id: str | None = None
    previous_id: str | None = None

    @property
    def record_count(self) -> int:
        return len(self.records)

    def distinct(self) -> list[LogRecordFacts]:
        """The records, each digest once, in arrival order."""
        seen: dict[bytes, LogRecordFacts] = {}
        for record in self.records:
            seen.setdefault(record.digest, record)
        return list(seen.values())

    def chunk(self, records: list[LogRecordFacts] | None = None) -> bytes:
        """The log chunk of ``records`` (default: the distinct records)."""
        records = self.distinct() if records is None else records
        scopes: dict[tuple, list[bytes]] = {}
        for record in records:
            bodies = scopes.get(record.scope)
            if bodies is None:
                scopes[record.scope] = [record.body]
            else:
                bodies.append(record.body)
        return encode_log_chunk([(*key, bodies) for key, bodies in scopes.items()], len(records))

    def to_write(self, session_id: str) -> LogWrite:
        """The store record of this group as session ``session_id``."""
        records = self.distinct()
        errors = 0
        message = ""
        start = end = 0
        for record in records:
            if record.error:
                errors += 1
                if not message and record.message:
                    message = record.message
            t = record.time_us
            if not start or t < start:
                start = t
            if t > end:
                end = t
        once = [("id", session_id)]
        for field_name, value in (("name", self.name), ("user", self.user_id), ("thread", self.thread_id),
                                  ("prev", self.previous_id)):
            if value:
                once.append((field_name, value))
        return LogWrite(session_id, len(records), b"".join([r.digest for r in records]), errors, message, start, end,
                        tuple(once), tuple(sorted(self.labels)), self.chunk(records), self.user_id, self.thread_id)

    def only(self, mask: bytes) -> LogGroup:
        """A copy holding only the records whose byte in ``mask`` is ``b"1"`` (over
        :meth:`distinct`, as the store's partial-write reply gives it)."""
        keep = {record.digest for record, flag in zip(self.distinct(), mask) if flag == 49}  # '1'
        return replace(self, records=[record for record in self.records if record.digest in keep])

    def merge(self, other: LogGroup) -> None:
        """Add ``other``'s records (an orphan group joining this session)."""
        self.records.extend(other.records)
        self.labels |= other.labels
        for name in ("name", "user_id", "thread_id", "previous_id"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))


@dataclass
class LogBatch:
    """The log records of one request, grouped: by session, orphans by trace, what was refused.

    ``record_sessions`` holds, per record of the request (in order), its session, or for an
    orphan its trace id (bytes), or None for a record refused: what forwarding needs to add
    the session to each record."""

    sessions: dict[str, LogGroup] = field(default_factory=dict)
    orphans: dict[bytes, LogGroup] = field(default_factory=dict)
    trace_sessions: dict[bytes, str] = field(default_factory=dict)
    record_sessions: list[str | bytes | None] = field(default_factory=list)
    record_count: int = 0
    rejected: int = 0  # refused (bad ids) or dropped (no trace and no session)
    invalid_ids: int = 0
    invalid_values: int = 0
    errors: list[str] = field(default_factory=list)

    def join_local(self) -> int:
        """Move orphans whose trace names a session in this same request; returns records moved."""
        moved = 0
        for trace_id in [t for t in self.orphans if t in self.trace_sessions]:
            group = self.orphans.pop(trace_id)
            self.sessions.setdefault(self.trace_sessions[trace_id], LogGroup()).merge(group)
            moved += group.record_count
        return moved


class LogBatchBuilder:
    """Turns ``ResourceLogs`` into a :class:`LogBatch` (stateless apart from its settings)."""

    def __init__(self, max_id_length: int = attr.MAX_ID_LENGTH) -> None:
        self.max_id_length = max_id_length
        self._id_validity: dict[str, bool] = {}

    def _is_valid(self, value: str) -> bool:
        known = self._id_validity.get(value)
        if known is None:
            known = attr.is_valid_id(value, self.max_id_length)
            if len(self._id_validity) >= 50_000:
                self._id_validity.clear()
            self._id_validity[value] = known
        return known

    @staticmethod
    def _walk(attributes, found: list, ranks: list) -> object | None:
        """Fill ``found`` with the session attributes of ``attributes``; returns the
        conversation id value (the session's fallback)."""
        conversation = None
        slot_of = _SLOTS.get
        for kv in attributes:
            hit = slot_of(kv.key)
            if hit is None:
                continue
            slot, rank = hit
            if rank < ranks[slot]:
                ranks[slot] = rank
                found[slot] = kv.value
            if slot == _S_THREAD and rank == 0:  # gen_ai.conversation.id itself
                conversation = found[slot]
        return conversation

    def build(self, resource_logs: Iterable[ResourceLogs], force_session: str | None = None) -> LogBatch:
        """Group every record; ``force_session`` assigns records without a session to it."""
        batch = LogBatch()
        now_us = int(time.time() * 1e6)
        for rl in resource_logs:
            resource = rl.resource
            resource_found: list | None = [None] * 5
            resource_conversation = self._walk(resource.attributes, resource_found, [99] * 5)
            if resource_conversation is None and not any(resource_found):
                resource_found = None  # the usual case: no session on the resource
            service = None
            for kv in resource.attributes:
                if kv.key == attr.SERVICE_NAME:
                    service = kv.value.string_value
                    break
            service_label = _SERVICE + _clean(service[:256]) if service else None
            resource_bytes = resource.SerializeToString()
            for sl in rl.scope_logs:
                key = (resource_bytes, rl.schema_url, sl.scope.SerializeToString(), sl.schema_url)
                for record in sl.log_records:
                    self._add(batch, record, key, service_label, resource_found, resource_conversation,
                              force_session, now_us)
        return batch

    def _add(self, batch: LogBatch, record, key: tuple, service_label: str | None, resource_found: list | None,
             resource_conversation, force_session: str | None, now_us: int) -> None:
        trace_id = record.trace_id
        span_id = record.span_id
        if len(trace_id) not in (0, 16) or len(span_id) not in (0, 8):
            self._refuse(batch, "trace_id must be 16 bytes and span_id 8 bytes (or both empty)")
            return
        if trace_id == _ZERO_TRACE:
            trace_id = b""
        found: list = [None] * 5
        conversation = self._walk(record.attributes, found, [99] * 5)
        if resource_found is not None:
            for slot in range(5):
                if found[slot] is None:
                    found[slot] = resource_found[slot]
        session_value = found[_S_SESSION]
        if session_value is None:
            session_value = conversation if conversation is not None else resource_conversation
        session_id = _text(session_value) if session_value is not None else None
        if session_id is not None and not self._is_valid(session_id):
            batch.invalid_ids += 1
            session_id = None
        if session_id is None:
            session_id = force_session
        elif trace_id and trace_id not in batch.trace_sessions:
            batch.trace_sessions[trace_id] = session_id
        if session_id is None and not trace_id:
            self._refuse(batch, "log record without a session id and without a trace_id: not stored")
            return
        batch.record_count += 1

        if session_id is None:
            group = batch.orphans.get(trace_id)
            if group is None:
                group = batch.orphans[trace_id] = LogGroup()
            batch.record_sessions.append(trace_id)
        else:
            group = batch.sessions.get(session_id)
            if group is None:
                group = batch.sessions[session_id] = LogGroup()
            batch.record_sessions.append(session_id)
        if group.thread_id is None and found[_S_THREAD] is not None:
            group.thread_id = self._valid(batch, _text(found[_S_THREAD]))
        if group.user_id is None and found[_S_USER] is not None:
            group.user_id = self._valid(batch, _text(found[_S_USER]))
        if group.name is None and found[_S_NAME] is not None:
            name = _text(found[_S_NAME])
            group.name = _clean(name[:1024]) if name else None
        if group.previous_id is None and found[_S_PREVIOUS] is not None:
            group.previous_id = self._valid(batch, _text(found[_S_PREVIOUS]))
        if service_label:
            group.labels.add(service_label)

        severity = record.severity_number
        if not 0 <= severity <= _MAX_SEVERITY:
            self._invalid(batch, "severity_number outside 0..24 (taken as unspecified)")
            severity = 0
        nanos = record.time_unix_nano or record.observed_time_unix_nano
        time_us = nanos // 1000 if nanos else now_us
        if time_us > MAX_TIME_US:
            self._invalid(batch, "time after the year 2255 (clamped)")
            time_us = MAX_TIME_US
        error = severity >= ERROR_SEVERITY
        message = _clean(record_message(record)[:MAX_MESSAGE_LENGTH]) if error else None
        body = record.SerializeToString()
        group.records.append(LogRecordFacts(key, body, record_digest(body, trace_id, nanos), trace_id, time_us,
                                            error, message))

    @staticmethod
    def _refuse(batch: LogBatch, problem: str) -> None:
        batch.rejected += 1
        batch.record_sessions.append(None)
        if len(batch.errors) < 5 and problem not in batch.errors:
            batch.errors.append(problem)

    @staticmethod
    def _invalid(batch: LogBatch, problem: str) -> None:
        batch.invalid_values += 1
        if len(batch.errors) < 5:
            batch.errors.append(f"log record: {problem}")

    def _valid(self, batch: LogBatch, value: str | None) -> str | None:
        if value is None or self._is_valid(value):
            return value
        batch.invalid_ids += 1
        return None
