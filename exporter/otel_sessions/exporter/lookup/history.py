"""Re-sent histories parsed once: each model call's input is the previous call's input plus a
few messages, so its JSON text usually starts with the previous text.

:class:`HistoryCache` keeps, per attribute, the last few JSON arrays of messages it parsed
(text, messages, and how many messages of each kind they hold). A new text that is one of
them with more array elements appended (``[a, b]`` then ``[a, b, c, d]``, with the same
serialization) is parsed only past it: its messages are the earlier ones (the same
:class:`Message` objects) followed by the new ones. A text that extends none is parsed
whole. The messages are what a whole parse gives; the answer is a :class:`History` that also
says how many leading messages were re-sent, and the kind counts over them, so the
transcript's de-duplication also only looks at the new ones. A conversation of *n* messages
thus costs O(n) parsing instead of O(n²).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from otel_sessions.exporter.lookup.messages import Message, messages_from_value

__all__ = ["History", "HistoryCache", "kind_counts"]

_KEEP = 8  # texts kept per attribute (interleaved histories of several agents)


class History(list):
    """Messages (a list) of which the first ``resent`` are an earlier history's; ``counts``: how
    many non-system messages of each kind (``Message.key()``) those ``resent`` hold."""

    resent: int = 0
    counts: dict | None = None


def kind_counts(messages, counts: dict | None = None) -> dict:
    """``counts`` (copied) plus the non-system messages of each kind in ``messages``."""
    out = dict(counts) if counts else {}
    for message in messages:
        if message.role != "system":
            key = message.key()
            out[key] = out.get(key, 0) + 1
    return out


def _role_list(value: Any) -> bool:
    """A JSON array of message objects (each with a role): what can be split anywhere."""
    return isinstance(value, list) and all(isinstance(item, dict) and "role" in item for item in value)


def _history(messages: list[Message], resent: int, counts: dict | None) -> History:
    out = History(messages)
    out.resent, out.counts = resent, counts
    return out


class HistoryCache:
    """Parsed message arrays by attribute key, for one transcript's work (not shared)."""

    def __init__(self) -> None:
        self._recent: dict[str, deque[tuple[str, list[Message], dict]]] = {}
        self._same: dict[tuple[str, str], Any] = {}

    def same(self, key: str, text: str) -> Any:
        """What :meth:`remember` kept for this attribute's ``text`` (system instructions repeat
        verbatim on every call), else None."""
        return self._same.get((key, text))

    def remember(self, key: str, text: str, value: Any) -> None:
        if len(self._same) < 256:
            self._same[(key, text)] = value

    def parse(self, key: str, text: str, default_role: str) -> History | None:
        """The messages of ``text`` (a JSON array), or None when it does not parse as a list of
        messages (the caller then reads it its own way)."""
        recent = self._recent.setdefault(key, deque(maxlen=_KEEP))
        for earlier, messages, counts in reversed(recent):
            if text == earlier:
                return _history(messages, len(messages), counts)
            if len(text) > len(earlier) and earlier.endswith("]") and text.startswith(earlier[:-1]):
                rest = text[len(earlier) - 1:].lstrip()
                if not rest.startswith(","):
                    continue
                try:
                    tail = json.loads("[" + rest[1:])
                except (ValueError, RecursionError):
                    return None
                if not _role_list(tail):
                    continue
                new = messages_from_value(tail, default_role)
                found = messages + new
                recent.append((text, found, kind_counts(new, counts)))
                return _history(found, len(messages), counts)
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not _role_list(value) or not value:
            return None
        found = messages_from_value(value, default_role)
        recent.append((text, found, kind_counts(found)))
        return _history(found, 0, None)
