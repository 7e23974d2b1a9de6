"""W3C baggage for sessions (opt-in): write the session's ids, read them back downstream.

Baggage leaves the process in the headers of every outgoing request (third parties included),
so nothing is written or read unless baggage is enabled: ``enable_baggage()``,
``SessionSpanProcessor(baggage=True)`` or ``OTEL_SESSIONS_BAGGAGE=true``. Only the keys of
``attributes.BAGGAGE_KEYS`` are written; Langfuse's ``langfuse_session_id`` and
``langfuse_user_id`` are also read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import baggage
from opentelemetry.context import Context

from .attributes import (
    BAGGAGE_KEYS,
    BAGGAGE_LANGFUSE_SESSION_ID,
    BAGGAGE_LANGFUSE_USER_ID,
    MAX_METADATA_VALUE_LENGTH,
    SESSION_ID,
    SESSION_NAME,
    THREAD_ID,
    USER_ID,
    is_valid_id,
)
from .settings import OTEL_SESSIONS_BAGGAGE, env_flag

if TYPE_CHECKING:
    from .context import SessionContext

__all__ = ["baggage_enabled", "context_with_session_baggage", "enable_baggage", "ids_from_baggage"]

#: baggage key -> canonical attribute, in precedence order (canonical keys before Langfuse's).
_READ_KEYS: tuple[tuple[str, str], ...] = (
    *((key, key) for key in BAGGAGE_KEYS),
    (BAGGAGE_LANGFUSE_SESSION_ID, SESSION_ID),
    (BAGGAGE_LANGFUSE_USER_ID, USER_ID),
)

_enabled: bool | None = None


def enable_baggage(enabled: bool = True) -> None:
    """Turn baggage writing (by ``session(...)``) and reading on or off for this process."""
    global _enabled
    _enabled = bool(enabled)


def baggage_enabled() -> bool:
    """Whether baggage is on: set by ``enable_baggage()``, else ``OTEL_SESSIONS_BAGGAGE``."""
    global _enabled
    if _enabled is None:
        _enabled = env_flag(OTEL_SESSIONS_BAGGAGE, False)
    return _enabled


def context_with_session_baggage(active: SessionContext, context: Context | None = None) -> Context:
    """``context`` (default: the current one) with the session's ids set as baggage entries."""
    for key, value in (
        (SESSION_ID, active.session_id),
        (THREAD_ID, active.thread_id),
        (USER_ID, active.user_id),
        (SESSION_NAME, active.name),
    ):
        if value is not None:
            context = baggage.set_baggage(key, value, context)
    return context if context is not None else Context()


def ids_from_baggage(context: Context | None = None) -> dict[str, str]:
    """Canonical attribute -> value for the session keys found in the baggage of ``context``.

    Invalid values (see ``attributes.is_valid_id``) are ignored; a canonical key wins over
    Langfuse's key for the same concept. Reads baggage whether or not it is enabled: callers
    check ``baggage_enabled()``.
    """
    entries: Mapping[str, object] = baggage.get_all(context)
    if not entries:
        return {}
    found: dict[str, str] = {}
    for key, attribute in _READ_KEYS:
        if attribute in found:
            continue
        value = entries.get(key)
        limit = MAX_METADATA_VALUE_LENGTH if attribute == SESSION_NAME else None
        if value is not None and (is_valid_id(value) if limit is None else is_valid_id(value, limit)):
            found[attribute] = value  # type: ignore[assignment]
    return found
