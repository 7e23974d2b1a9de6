"""Session logs in the app: the active session on every log record.

- ``SessionLogProcessor``: an OpenTelemetry Logs SDK ``LogRecordProcessor`` that stamps
  ``session.id``, ``gen_ai.conversation.id``, ``user.id``, ``session.name`` and
  ``session.previous_id`` on every record emitted through the OpenTelemetry Logs API
  (stdlib ``logging`` through the SDK's ``LoggingHandler``, events of GenAI
  instrumentations).
- ``SessionLogFilter``: a stdlib ``logging.Filter`` that puts ``session_id``, ``thread_id``
  and ``user_id`` on every ``logging.LogRecord``, for apps that log to files or the console
  without OpenTelemetry Logs (``%(session_id)s`` in a format string).

Both read the session the way the span processor does: the session entered with
``session(...)`` in this context, else (baggage enabled) the W3C baggage of the context.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import LogRecordProcessor

from .attributes import SESSION_ID, SESSION_NAME, SESSION_PREVIOUS_ID, THREAD_ID, USER_ID
from .context import _ACTIVE, current_session
from .propagation import baggage_enabled, ids_from_baggage

__all__ = ["LOG_RECORD_ATTRIBUTES", "SessionLogFilter", "SessionLogProcessor"]

_logger = logging.getLogger(__name__)

#: The attributes ``SessionLogProcessor`` stamps, when the session has them (canonical names,
#: ``attributes``). Session metadata stays on spans.
LOG_RECORD_ATTRIBUTES: tuple[str, ...] = (SESSION_ID, THREAD_ID, USER_ID, SESSION_NAME, SESSION_PREVIOUS_ID)

# Set while a failure is being reported, so a debug line that reaches an OpenTelemetry
# ``LoggingHandler`` (and so this processor again) cannot loop.
_reporting = threading.local()


def _report_failure(what: str) -> None:
    if getattr(_reporting, "active", False):
        return
    _reporting.active = True
    try:
        _logger.debug("otel-sessions: %s failed", what, exc_info=True)
    except Exception:
        pass
    finally:
        _reporting.active = False


def _session_attributes(context: Any) -> Mapping[str, object]:
    """The session's log attributes: the active session's, else (baggage on) those carried
    in the baggage of ``context`` (None: the current context)."""
    active = _ACTIVE.get()
    if active is not None:
        source = active._attributes
        return {key: source[key] for key in LOG_RECORD_ATTRIBUTES if key in source}
    if baggage_enabled():
        return ids_from_baggage(context)
    return {}


class SessionLogProcessor(LogRecordProcessor):
    """Stamps the active session on every OpenTelemetry log record when it is emitted.

    ``session.id``, ``gen_ai.conversation.id``, ``user.id``, ``session.name`` and
    ``session.previous_id`` (OpenTelemetry semantic conventions, as on spans; ``user.id``,
    ``session.name`` and ``session.previous_id`` only when the session has them) are added
    to the record's attributes. Values come from the session entered with ``session(...)``
    where the record is emitted, else, with baggage enabled (``enable_baggage()``,
    ``SessionSpanProcessor(baggage=True)``, ``OTEL_SESSIONS_BAGGAGE``), from the W3C baggage
    of the record's context. An attribute the record already carries is never overwritten;
    outside a session nothing is added.

    Add it to the ``LoggerProvider`` BEFORE the exporting processor (``BatchLogRecordProcessor``
    or ``SimpleLogRecordProcessor``): processors run in the order they were added, and the
    exporting one hands the record on (or exports it) as soon as it sees it, so attributes
    added after it may miss the export::

        provider = LoggerProvider()
        provider.add_log_record_processor(SessionLogProcessor())  # first
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))

    ``on_emit`` never raises into the app (a failure is logged at debug level), never
    blocks and does no I/O. It accepts what the installed SDK passes: a ``ReadWriteLogRecord``
    (``on_emit``, newer SDKs) or a ``LogData`` (``emit``, older SDKs such as 1.25).
    """

    def on_emit(self, log_record: Any) -> None:
        """Add the session's attributes to ``log_record.log_record``; never raises."""
        try:
            record = log_record.log_record
            added = _session_attributes(getattr(record, "context", None))
            if not added:
                return
            attributes = record.attributes
            if attributes is None:
                record.attributes = BoundedAttributes(attributes=added, immutable=False)
                return
            for key, value in added.items():
                if key not in attributes:
                    attributes[key] = value
        except Exception:  # never into the app
            _report_failure("stamping a log record")

    #: SDKs before ``on_emit`` call ``emit(log_data)``; ``LogData`` has ``log_record`` too.
    emit = on_emit

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered: always True."""
        return True


class SessionLogFilter(logging.Filter):
    """A stdlib ``logging.Filter`` that puts the active session on every ``LogRecord``.

    Sets ``record.session_id``, ``record.thread_id`` and ``record.user_id`` (strings; an
    empty string outside a session or for a session without a user), so a format string
    such as ``"%(session_id)s %(thread_id)s %(user_id)s %(message)s"`` works for every
    record, in a session or not. The session is ``current_session()`` where the record is
    emitted. A value the record already has (``extra={"session_id": ...}``) is kept.
    ``filter`` always returns True (it drops nothing) and never raises.

    Attach it to the handler that formats (``handler.addFilter(SessionLogFilter())``) or to
    a logger; it must run in the thread that logs, so not on handlers behind a
    ``QueueListener``. These are plain record attributes for formatters: OpenTelemetry log
    records get the canonical attributes from ``SessionLogProcessor`` instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``session_id``, ``thread_id`` and ``user_id`` to ``record``; True."""
        session_id = thread_id = user_id = ""
        try:
            active = current_session()
            if active is not None:
                session_id, thread_id, user_id = (
                    active.session_id,
                    active.thread_id or "",
                    active.user_id or "",
                )
        except Exception:  # the record still gets empty strings: formatting never fails here
            _report_failure("reading the session for a log record")
        try:
            fields = vars(record)
            fields.setdefault("session_id", session_id)
            fields.setdefault("thread_id", thread_id)
            fields.setdefault("user_id", user_id)
        except Exception:
            _report_failure("adding the session to a log record")
        return True
