"""Session events on spans: ``end_session()``, ``state_change()``, ``escalate_session()``."""

from __future__ import annotations

import json
import logging

from opentelemetry import trace

from .attributes import (
    MAX_METADATA_VALUE_LENGTH,
    SESSION_END_EVENT,
    SESSION_ESCALATED,
    SESSION_ID,
    STATE_CHANGE_EVENT,
    STATE_CHANGE_KEY,
    STATE_CHANGE_TRUNCATED,
    STATE_CHANGE_VALUE,
)
from .context import current_session

__all__ = ["end_session", "escalate_session", "state_change"]

_logger = logging.getLogger(__name__)


def _target(span: trace.Span | None) -> trace.Span | None:
    span = span if span is not None else trace.get_current_span()
    return span if span.is_recording() else None


def end_session(span: trace.Span | None = None) -> bool:
    """Mark the active session completed: a ``session.end`` event on ``span`` (default: the
    current span), carrying ``session.id``. The store then reports the session ``completed``.

    Returns True when the event was recorded (a recording span and an active session).
    Never raises.
    """
    try:
        active = current_session()
        target = _target(span)
        if active is None or target is None:
            return False
        target.add_event(SESSION_END_EVENT, {SESSION_ID: active.session_id})
        return True
    except Exception:
        _logger.debug("otel-sessions: end_session failed", exc_info=True)
        return False


def escalate_session(span: trace.Span | None = None) -> bool:
    """Mark the active session handed to a human: ``session.escalated=true`` on ``span``
    (default: the current span). Returns True when set. Never raises."""
    try:
        target = _target(span)
        if target is None:
            return False
        target.set_attribute(SESSION_ESCALATED, True)
        return True
    except Exception:
        _logger.debug("otel-sessions: escalate_session failed", exc_info=True)
        return False


def state_change(
    key: str,
    value: object,
    *,
    span: trace.Span | None = None,
    max_length: int = MAX_METADATA_VALUE_LENGTH,
) -> bool:
    """Record that ``key`` changed to ``value``: a ``state_change`` event on ``span`` (default:
    the current span) with ``state_change.key`` and ``state_change.value``.

    A value that is not a string is written as JSON (or ``str()`` when JSON cannot encode
    it); the text is cut to ``max_length`` characters (default 1,024), and
    ``state_change.truncated=true`` says so. Returns True when recorded. Never raises.
    """
    try:
        target = _target(span)
        if target is None:
            return False
        if isinstance(value, str):
            text = value
        else:
            try:
                text = json.dumps(value, default=str, ensure_ascii=False)
            except (TypeError, ValueError):
                text = str(value)
        attributes: dict[str, str | bool] = {STATE_CHANGE_KEY: str(key)}
        if len(text) > max_length:
            text = text[: max(max_length, 0)]
            attributes[STATE_CHANGE_TRUNCATED] = True
        attributes[STATE_CHANGE_VALUE] = text
        target.add_event(STATE_CHANGE_EVENT, attributes)
        return True
    except Exception:
        _logger.debug("otel-sessions: state_change failed", exc_info=True)
        return False
