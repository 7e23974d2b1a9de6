"""Every Redis key of the store, built in one place.

Layout (``P`` is the key prefix, default ``ots``)::

    P:{S}:sum            hash   session summary (counters, flags, labels, metadata)
    P:{S}:chunks         list   compressed span chunks, oldest first
    P:{S}:ids            string 8-byte digests of stored spans (idempotency), counted traces and
                                usage markers; for a large session 64 strings P:{S}:ids:0..63
    P:{S}:agg            hash   usage marker -> aggregating-span usage counted for a trace
    P:{S}:logs           list   compressed log chunks, oldest first (log_codec.py)
    P:{S}:logids         string 8-byte digests of stored log records; for a large session 64
                                strings P:{S}:logids:0..63
    P:{S}:conv           string the session's conversation figures (JSON, lookup/figures.py), a
                                cache written on read, expiring with the retention
    P:{ix:N}:seen        zset   session -> last write (ms); also what prunes expired sessions
    P:{ix:N}:start|end|duration|spans|traces|tokens|cost   zsets for sorting
    P:{ix:N}:user:U      zset   sessions of user U (score: last write ms)
    P:{ix:N}:thread:T    zset   sessions of thread T (score: session start, µs)
    P:{tj:N}mE.B         hash   trace map of epoch E, bucket B: the 16 trace id bytes -> the
                                trace's session, for joining spans without a session id and
                                for lookups by trace id (see :func:`trace_epoch_ms`)
    P:{tj:N}:p:TRACE     list   spans of a trace that has not named its session yet
    P:{tj:N}:parked      zset   the 16 trace id bytes of traces with parked spans -> last park
                                (ms), at most PARKED_TRACES per shard: what searches read
    P:{tj:N}:lp:TRACE    list   log records of a trace that has not named its session yet
    P:{tj:N}:s:TRACE     string session of a synthetic session trace id (Jaeger API, jaeger.py)
    P:{jo:N}:services    zset   service names seen (score: last seen ms), for the Jaeger API
    P:{jo:N}:ops:SERVICE zset   "kind NUL operation" of a service (score: last seen ms)
    P:quota:SIGNAL       hash   a tenant's token bucket of ``spans`` or ``logs`` (``rate_limit.lua``)

``P`` is a tenant's namespace: ``--key-prefix`` for the default tenant, ``--key-prefix:t.NAME``
for tenant NAME of the tenants file (``tenants.tenant_key_prefix``), so every key, index, trace
map entry and pub/sub channel of one tenant is apart from every other tenant's.

``S`` is the session's hash tag: all keys of one session live in one cluster slot, so one
Lua script can write them atomically. Cross-session indexes are sharded over
:data:`INDEX_SHARDS` slots (``N = crc32(session) % 16``); readers merge the shards. The
Jaeger API's service and operation lists are sharded by service (``N = crc32(service) % 16``),
a service's operations living in the slot of its ``services`` shard.
"""

from __future__ import annotations

import hashlib
import zlib

from otel_sessions.exporter.store.schema import SORT_INDEXES

__all__ = ["INDEX_SHARDS", "TRACE_BUCKETS", "PARKED_TRACES", "Keys", "trace_epoch_ms"]

#: Shards of every cross-session index. Part of the data model: all receivers must agree.
INDEX_SHARDS = 16

#: Buckets of the trace map per trace shard and epoch (16 x 64 small hashes per epoch).
#: Part of the data model: all receivers must agree.
TRACE_BUCKETS = 64

#: Traces kept per trace shard in the index of traces with parked spans (the newest win):
#: 16 x 10,000 recent session-less traces are searchable.
PARKED_TRACES = 10_000

def session_tag(session_id: str) -> str:
    """The hash tag of a session: its id, or a digest when the id contains a brace."""
    if "{" in session_id or "}" in session_id:
        return "h:" + hashlib.sha1(session_id.encode()).hexdigest()
    return session_id


def session_shard(session_id: str) -> int:
    return zlib.crc32(session_id.encode()) % INDEX_SHARDS


def trace_shard(trace_id: bytes) -> int:
    return trace_id[-1] % INDEX_SHARDS


def trace_bucket(trace_id: bytes) -> int:
    return trace_id[-2] % TRACE_BUCKETS


def trace_epoch_ms(retention_ms: int) -> int:
    """Length of one epoch of the trace map: an eighth of the retention, from 1 s to 10 min.

    The map of one epoch is a set of small hashes that expire together, retention after the
    epoch ends, so an entry lives at least the retention after its last write and at most an
    eighth longer. Receivers sharing a Redis must share the retention (and so the epochs).
    Redis 7.0 has no TTL per hash field; one key per trace cost 2.5x the memory.
    """
    return max(1000, min(600_000, retention_ms // 8))


def service_shard(service: str) -> int:
    return zlib.crc32(service.encode()) % INDEX_SHARDS


class Keys:
    """Key builders for one key prefix."""

    def __init__(self, prefix: str = "ots") -> None:
        self.prefix = prefix

    # --- one session (one slot) -------------------------------------------------------------
    def session(self, session_id: str) -> tuple[str, str, str, str]:
        """``(summary, chunks, ids, agg)`` keys of a session, in the order the scripts take
        (the scripts derive the 64 ``ids:N`` bucket keys of a large session from ``ids``)."""
        base = f"{self.prefix}:{{{session_tag(session_id)}}}:"
        return base + "sum", base + "chunks", base + "ids", base + "agg"

    def summary(self, session_id: str) -> str:
        return self.session(session_id)[0]

    def session_logs(self, session_id: str) -> tuple[str, str, str]:
        """``(summary, logs, logids)`` keys of a session: ``write_logs.lua``'s first KEYS (it
        derives the 64 ``logids:N`` bucket keys of a large session from ``logids``)."""
        base = f"{self.prefix}:{{{session_tag(session_id)}}}:"
        return base + "sum", base + "logs", base + "logids"

    def conversation(self, session_id: str) -> str:
        """The cached conversation figures of a session (``lookup/figures.py``)."""
        return f"{self.prefix}:{{{session_tag(session_id)}}}:conv"

    def log_tail_channel(self, session_id: str) -> str:
        """Pub/sub channel announcing new log chunks of a session (beside :meth:`tail_channel`)."""
        return f"{self.prefix}:{{{session_tag(session_id)}}}:ltail"

    def ready_probe(self) -> str:
        """A key ``/readyz`` writes (with a 10 s TTL) to learn whether Redis takes writes."""
        return f"{self.prefix}:ready"

    def tail_channel(self, session_id: str) -> str:
        """Pub/sub channel announcing new chunks of a session."""
        return f"{self.prefix}:{{{session_tag(session_id)}}}:tail"

    # --- cross-session indexes (sharded) ----------------------------------------------------
    def _shard(self, shard: int) -> str:
        return f"{self.prefix}:{{ix:{shard}}}:"

    def seen(self, shard: int) -> str:
        return self._shard(shard) + "seen"

    def sort_index(self, shard: int, sort_key: str) -> str:
        if sort_key not in SORT_INDEXES:
            raise KeyError(sort_key)
        return self._shard(shard) + sort_key

    def shard_indexes(self, shard: int) -> list[str]:
        """The ``seen`` index then every sort index of a shard, in :data:`SORT_INDEXES` order."""
        return [self.seen(shard)] + [self.sort_index(shard, name) for name in SORT_INDEXES]

    def user(self, shard: int, user_id: str) -> str:
        return self._shard(shard) + "user:" + user_id

    def thread(self, shard: int, thread_id: str) -> str:
        return self._shard(shard) + "thread:" + thread_id

    # --- trace joining (sharded by trace id) ------------------------------------------------
    def trace_map(self, trace_id: bytes, epoch: int) -> str:
        """The hash of epoch ``epoch`` that holds ``trace_id`` (as a field) -> its session."""
        return f"{self.prefix}:{{tj:{trace_shard(trace_id)}}}m{epoch}.{trace_bucket(trace_id)}"

    def trace_pending(self, trace_id: bytes) -> str:
        return f"{self.prefix}:{{tj:{trace_shard(trace_id)}}}:p:{trace_id.hex()}"

    def parked_traces(self, shard: int) -> str:
        """Traces of trace shard ``shard`` with parked spans -> last park ms (one slot with their
        parked lists, so ``join_traces.lua`` writes both)."""
        return f"{self.prefix}:{{tj:{shard}}}:parked"
    def trace_log_pending(self, trace_id: bytes) -> str:
        """Log records of a trace waiting for the trace to name its session."""
        return f"{self.prefix}:{{tj:{trace_shard(trace_id)}}}:lp:{trace_id.hex()}"

    def synthetic_trace(self, trace_id: bytes) -> str:
        """Session of a synthetic session trace id (see ``jaeger.session_trace_id``)."""
        return f"{self.prefix}:{{tj:{trace_shard(trace_id)}}}:s:{trace_id.hex()}"

    # --- Jaeger API: services and operations (sharded by service) ---------------------------
    def services(self, shard: int) -> str:
        return f"{self.prefix}:{{jo:{shard}}}:services"

    def operations(self, service: str) -> str:
        return f"{self.prefix}:{{jo:{service_shard(service)}}}:ops:{service}"

    # --- quotas (--tenants) -----------------------------------------------------------------
    def quota_bucket(self, signal: str) -> str:
        """The token bucket of the namespace's ``signal`` (``spans`` or ``logs``) rate quota."""
        return f"{self.prefix}:quota:{signal}"
