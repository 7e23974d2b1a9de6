"""Content control on ingest: redact attribute values before anything is stored or forwarded.

Two rules, either or both (``--redact-attributes``, ``--redact-patterns``):

* **keys**: glob patterns (``fnmatch``, case-sensitive; ``*`` also matches dots) of attribute
  keys, e.g. ``gen_ai.input.messages`` or ``llm.input_messages.*``. The value of every
  key-value whose key matches becomes the string ``"[redacted]"``: attributes of resources,
  scopes, spans, span events and links, and keys inside map values (``kvlist_value``) and log
  bodies at any depth.
* **patterns**: regular expressions (Python ``re``), e.g. an e-mail address or a card
  number. Every match inside a string value is replaced by ``[redacted]``: string attribute
  values (in arrays and maps too), span event and link attributes, and log record bodies.

:meth:`Redactor.redact_traces` changes an ``ExportTraceServiceRequest`` (or ``TracesData``)
in place and returns how many values it changed (``otel_sessions_redacted_values_total``);
:meth:`Redactor.redact_logs` does the same for ``ExportLogsServiceRequest`` / ``LogsData``.
Span names, status messages and event names are left as they are. The cost is a walk over
every attribute of the request, so nothing is built unless a rule is configured.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence

__all__ = ["Redactor", "REDACTED"]

#: What a redacted value (or a redacted part of a string) becomes.
REDACTED = "[redacted]"
_MAX_DEPTH = 64
_KEY_CACHE = 10_000


class Redactor:
    """Redacts attribute values by key (globs) and string contents (regexes).

    Raises ``re.error`` for a pattern that does not compile (settings check this at start-up)."""

    def __init__(self, attribute_keys: Sequence[str] = (), patterns: Sequence[str] = ()) -> None:
        self.attribute_keys = tuple(attribute_keys)
        self.patterns = tuple(patterns)
        self._keys = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in self.attribute_keys)) \
            if self.attribute_keys else None
        self._regexes = [re.compile(p) for p in self.patterns]
        self._matches: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.attribute_keys or self.patterns)

    def _key_matches(self, key: str) -> bool:
        if self._keys is None:
            return False
        known = self._matches.get(key)
        if known is None:
            if len(self._matches) >= _KEY_CACHE:
                self._matches.clear()
            known = self._matches[key] = self._keys.match(key) is not None
        return known

    # --- values ------------------------------------------------------------------------------
    def _text(self, text: str) -> str | None:
        """``text`` with every pattern match replaced, or None when nothing matched."""
        changed = False
        for regex in self._regexes:
            text, n = regex.subn(REDACTED, text)
            changed = changed or n > 0
        return text if changed else None

    def _value(self, value, depth: int = 0) -> int:
        """Redact inside one AnyValue; the number of values changed."""
        kind = value.WhichOneof("value")
        if kind == "string_value":
            if not self._regexes:
                return 0
            text = self._text(value.string_value)
            if text is None:
                return 0
            value.string_value = text
            return 1
        if depth >= _MAX_DEPTH:
            return 0
        if kind == "array_value":
            return sum(self._value(v, depth + 1) for v in value.array_value.values)
        if kind == "kvlist_value":
            return self._pairs(value.kvlist_value.values, depth + 1)
        return 0

    def _pairs(self, pairs: Iterable, depth: int = 0) -> int:
        """Redact a repeated KeyValue; the number of values changed."""
        changed = 0
        for kv in pairs:
            if self._key_matches(kv.key):
                if kv.value.WhichOneof("value") != "string_value" or kv.value.string_value != REDACTED:
                    kv.value.Clear()
                    kv.value.string_value = REDACTED
                    changed += 1
            else:
                changed += self._value(kv.value, depth)
        return changed

    # --- requests ------------------------------------------------------------------------------
    def redact_traces(self, request) -> int:
        """Redact an ``ExportTraceServiceRequest`` or ``TracesData`` in place; values changed."""
        changed = 0
        for rs in request.resource_spans:
            changed += self._pairs(rs.resource.attributes)
            for ss in rs.scope_spans:
                changed += self._pairs(ss.scope.attributes)
                for span in ss.spans:
                    changed += self._pairs(span.attributes)
                    for event in span.events:
                        changed += self._pairs(event.attributes)
                    for link in span.links:
                        changed += self._pairs(link.attributes)
        return changed

    def redact_logs(self, request) -> int:
        """Redact an ``ExportLogsServiceRequest`` or ``LogsData`` in place (attributes and bodies);
        values changed."""
        changed = 0
        for rl in request.resource_logs:
            changed += self._pairs(rl.resource.attributes)
            for sl in rl.scope_logs:
                changed += self._pairs(sl.scope.attributes)
                for record in sl.log_records:
                    changed += self._pairs(record.attributes)
                    if record.HasField("body"):
                        changed += self._value(record.body)
        return changed
