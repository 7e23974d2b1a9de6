"""``SessionSpanProcessor``: stamps session, thread, user, name and metadata on every span."""

from __future__ import annotations

import logging

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .attributes import (
    ID_ALIASES,
    MAX_METADATA_VALUE_LENGTH,
    SESSION_ID,
    SESSION_NAME,
    THREAD_ID,
    is_valid_id,
)
from .context import _ACTIVE, SessionContext
from .propagation import enable_baggage, ids_from_baggage
from .settings import OTEL_SESSIONS_BAGGAGE, OTEL_SESSIONS_NORMALIZE, env_flag

__all__ = ["SessionSpanProcessor"]

_logger = logging.getLogger(__name__)

#: Every non-canonical alias, to skip normalisation at once on spans that carry none.
_ALIAS_KEYS = frozenset(alias for _, aliases in ID_ALIASES for alias in aliases[1:])


def _usable(canonical: str, value: object) -> bool:
    if canonical == SESSION_NAME:
        return is_valid_id(value, MAX_METADATA_VALUE_LENGTH)
    return is_valid_id(value)


def _fast_path_available() -> bool:
    """True when the SDK's attribute store has the shape ``_stamp_empty_span`` relies on."""
    try:
        probe = BoundedAttributes(maxlen=1, immutable=False, max_value_len=1)
        return (
            isinstance(probe._dict, dict)
            and probe.maxlen == 1
            and probe.max_value_len == 1
            and probe._immutable is False
        )
    except Exception:
        return False


_FAST_PATH = _fast_path_available()


def _stamp_empty_span(span: Span, active: SessionContext) -> bool:
    """Put the session's attributes into a span that has none yet, without the SDK's per-value
    cleaning (the values were checked once, when the session was entered).

    ``span.set_attributes`` cleans every value and takes two locks on every call: that is most
    of the processor's cost. In ``on_start`` the span is not yet visible to any other thread,
    its attribute store is empty, and the session's values are plain strings (or metadata
    scalars) within limits checked here, so the result is exactly what ``set_attributes``
    would store. Returns False, changing nothing, when any of that is not certain; the
    caller then uses ``set_attributes``.
    """
    store = getattr(span, "_attributes", None)
    if type(store) is not BoundedAttributes or store._immutable or store._dict:
        return False
    attributes = active._attributes
    if store.maxlen is not None and len(attributes) > store.maxlen:
        return False
    if store.max_value_len is not None and active._longest > store.max_value_len:
        return False
    store._dict.update(attributes)
    return True


class SessionSpanProcessor(SpanProcessor):
    """Stamps ``session.id``, ``gen_ai.conversation.id``, ``user.id``, ``session.name`` and
    ``session.metadata.*`` on every span when it starts.

    Add it to the ``TracerProvider`` (before or after the exporting processor: it only acts in
    ``on_start``, attributes are exported at ``on_end``).

    Where the values come from, first value wins (an attribute a span already has is never
    overwritten):

    1. the span's own attributes at start: other tools' aliases (``docs/conventions.md``,
       ``attributes.ID_ALIASES``) are copied onto the canonical names, originals kept;
    2. the session entered with ``session(...)`` in this process;
    3. with ``baggage=True``: W3C baggage of the parent context (a downstream service);
    4. a span with ``gen_ai.conversation.id`` and no session id from 1-3 gets it as
       ``session.id`` (the conversation is the session, as Langfuse and Phoenix do).

    Aliases set on a span *after* it started (``span.set_attribute`` by an instrumentation)
    are out of reach here: the otel-sessions receiver normalises those.

    ``on_start`` never raises into the app, never blocks and does no I/O.

    Args:
        baggage: read session keys from W3C baggage, and make ``session(...)`` write them
            (for every session in this process). Default: ``OTEL_SESSIONS_BAGGAGE``, else off.
        normalize: copy alias attributes onto canonical names. Default:
            ``OTEL_SESSIONS_NORMALIZE``, else on.
    """

    def __init__(self, *, baggage: bool | None = None, normalize: bool | None = None) -> None:
        self._baggage = env_flag(OTEL_SESSIONS_BAGGAGE, False) if baggage is None else bool(baggage)
        self._normalize = env_flag(OTEL_SESSIONS_NORMALIZE, True) if normalize is None else bool(normalize)
        if self._baggage:
            enable_baggage(True)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Stamp the session's attributes on ``span``; never raises, never blocks."""
        try:
            active = _ACTIVE.get()
            if active is not None and _FAST_PATH and _stamp_empty_span(span, active):
                return  # the common case: a span with no attributes of its own yet
            existing = span.attributes
            if not existing:
                if active is not None:  # one call, with the dict built once per session
                    span.set_attributes(active._attributes)
                    return
                if not self._baggage:
                    return
            self._stamp(span, existing, active, parent_context)
        except Exception:  # never into the app
            _logger.debug("otel-sessions: on_start failed", exc_info=True)

    def _stamp(self, span: Span, existing, active, parent_context: Context | None) -> None:  # noqa: ANN001
        added: dict[str, object] = {}
        if self._normalize and existing and not _ALIAS_KEYS.isdisjoint(existing):
            for canonical, aliases in ID_ALIASES:
                if canonical in existing:
                    continue
                for alias in aliases[1:]:
                    if alias == THREAD_ID:  # the conversation-as-session fallback comes last (4.)
                        continue
                    value = existing.get(alias)
                    if value is not None and _usable(canonical, value):
                        added[canonical] = value
                        break
        if active is not None:
            source = active._attributes
        elif self._baggage:
            source = ids_from_baggage(parent_context)
        else:
            source = {}
        for key, value in source.items():
            if key not in existing and key not in added:
                added[key] = value
        if self._normalize and SESSION_ID not in existing and SESSION_ID not in added:
            conversation = existing.get(THREAD_ID, added.get(THREAD_ID))
            if conversation is not None and is_valid_id(conversation):
                added[SESSION_ID] = conversation
        if added:
            span.set_attributes(added)  # type: ignore[arg-type]

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing: attributes are frozen once a span ends."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered: always True."""
        return True
