"""The storage vocabulary: every summary field, label kind, flag and sort index, named once.

The Lua scripts use the same names (their headers list them); ``tests/store/test_schema.py``
checks that every field a script writes or reads is named here and that the index script's
ZADD flags follow :data:`SORT_INDEXES`, so Python and Lua cannot drift apart. The key layout itself is in ``keys.py``; ``docs/storage.md`` explains both.
"""

from __future__ import annotations

from enum import IntFlag

__all__ = ["Field", "SUMMARY_FIELDS", "COUNTERS", "LABEL_KINDS", "METADATA_PREFIX", "SORT_INDEXES", "SessionFlags",
           "SpanFlags", "label"]


class Field:
    """Fields of a session's summary hash (``P:{S}:sum``)."""

    ID = "id"                # the session id as sent
    NAME = "name"            # first session name seen
    USER = "user"            # first user id seen
    THREAD = "thread"        # first thread (conversation) id seen
    PREVIOUS = "prev"        # first previous-session id seen
    START = "start"          # earliest span start, µs since the epoch
    END = "end"              # latest span end, µs
    SPANS = "spans"          # spans counted (each trace+span id once)
    TRACES = "traces"        # distinct traces counted
    ERRORS = "errors"        # spans with status ERROR or an exception event
    INPUT = "in"             # input tokens
    OUTPUT = "out"           # output tokens
    COST = "cost"            # USD, "%.12g"
    CACHE_READ = "cr"        # input tokens read from the prompt cache (part of "in")
    CACHE_WRITE = "cw"       # input tokens written to the prompt cache (part of "in")
    REASONING = "rs"         # output tokens spent reasoning (part of "out")
    STORED = "stored"        # span bodies kept in the chunk list
    DROPPED = "dropped"      # span bodies dropped beyond --max-spans-per-session
    SEEN = "seen"            # last write, ms since the epoch
    ENDED = "ended"          # "1": a session.end event arrived
    ESCALATED = "escalated"  # "1": session.escalated=true
    FAILED = "failed"        # "1": a root span ended in ERROR
    COST_ESTIMATED = "est"   # "1": some cost came from the price table
    DIGEST_LEVEL = "idb"     # k: the digests live in 2^k bucket strings (absent: one string)
    DIGESTS = "idn"          # digests stored (spans, traces, usage markers), for the buckets' growth
    LOGS = "logs"            # log records counted (each record once)
    LOG_ERRORS = "lerr"      # log records with severity_number >= 17 (ERROR and above)
    LOG_ERROR_MESSAGE = "lmsg"  # the first error record's message, 512 characters at most
    LOGS_STORED = "lstored"  # log records kept in the log chunk list
    LOGS_DROPPED = "ldropped"  # log records dropped beyond --max-logs-per-session
    LOG_DIGEST_LEVEL = "lidb"  # k: the log record digests live in 2^k bucket strings (absent: one)
    LOG_DIGESTS = "lidn"     # log record digests stored, for the buckets' growth


SUMMARY_FIELDS: tuple[str, ...] = tuple(v for k, v in vars(Field).items() if k.isupper())

#: Label kinds: a session's models, services, agents, tools and deployment environments are summary fields
#: ``<kind>:<value>`` = "1". Each label is passed to the script as its own argument, so no
#: byte of a value can split it into another field.
LABEL_KINDS: dict[str, str] = {"model": "m:", "service": "s:", "agent": "a:", "tool": "t:", "environment": "e:"}
#: ``session.metadata.<key>`` values are summary fields ``x:<key>``.
METADATA_PREFIX = "x:"

#: Sort indexes, each with the ZADD flag that keeps its score monotonic (a session's start
#: only moves earlier, every other figure only grows), in the order the index script takes.
SORT_INDEXES: dict[str, str] = {
    "start": "LT",
    "end": "GT",
    "duration": "GT",
    "spans": "GT",
    "traces": "GT",
    "tokens": "GT",
    "cost": "GT",
}


class SessionFlags(IntFlag):
    """Facts of a session write (``write_session.lua`` ARGV ``flags``)."""

    ENDED = 1
    ESCALATED = 2
    FAILED = 4
    COST_ESTIMATED = 8


class SpanFlags(IntFlag):
    """Facts of one span on the ingest hot path (plain ints there: ``int(SpanFlags.ERROR)``)."""

    ERROR = 1
    ROOT = 2
    COST_ESTIMATED = 4
    AGGREGATE = 8  # an agent/chain span: its usage sums its children's

#: Counters a write adds to the summary: every one but ``cost`` (USD, a float) is an integer.
COUNTERS: tuple[str, ...] = (Field.ERRORS, Field.INPUT, Field.OUTPUT, Field.COST, Field.CACHE_READ,
                             Field.CACHE_WRITE, Field.REASONING)


def label(kind: str, value: str) -> str:
    """The summary field of a label, e.g. ``label("model", "gpt-4o")`` -> ``"m:gpt-4o"``."""
    return LABEL_KINDS[kind] + value
