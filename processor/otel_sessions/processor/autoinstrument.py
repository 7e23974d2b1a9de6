"""Zero-code: ``opentelemetry-instrument`` adds ``SessionSpanProcessor`` (and
``SessionLogProcessor``) when enabled.

Registered as an ``opentelemetry_pre_instrument`` entry point. ``opentelemetry-instrument``
runs the distro, then the configurator (which sets the global ``TracerProvider`` and
``LoggerProvider`` and their exporting processors), then the ``opentelemetry_pre_instrument``
hooks, then the instrumentors. So this hook adds its processors to the providers the
configurator made, without replacing the user's distro or configurator, before any
instrumentation produces a span or a log record.

Logs: when the global logger provider is the SDK's ``LoggerProvider`` (the SDK's configurator
sets one; with ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true`` stdlib ``logging``
reaches it too), ``SessionLogProcessor`` is put *ahead* of the exporting processors the
configurator already added, so every exported record carries the session.

Environment (all optional):

- ``OTEL_SESSIONS_ENABLED=true`` turns it on (default off: installing is not enabling);
- ``OTEL_SESSIONS_BAGGAGE=true`` reads and writes the session keys as W3C baggage;
- ``OTEL_SESSIONS_NORMALIZE=false`` stops copying other tools' attributes onto the
  canonical names.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor

from .logs import SessionLogProcessor
from .processor import SessionSpanProcessor
from .settings import OTEL_SESSIONS_ENABLED, env_flag

try:
    from opentelemetry.sdk._logs import SynchronousMultiLogRecordProcessor
except ImportError:  # older SDKs (1.25) keep it in their internal module only
    from opentelemetry.sdk._logs._internal import SynchronousMultiLogRecordProcessor

__all__ = ["install"]

_logger = logging.getLogger(__name__)


def install() -> bool:
    """When ``OTEL_SESSIONS_ENABLED`` is true, add ``SessionSpanProcessor`` to the global tracer
    provider and ``SessionLogProcessor`` (first) to the global logger provider when it is the
    SDK's. Returns True when the span processor was added. Never raises (a hook must not stop
    the app)."""
    try:
        if not env_flag(OTEL_SESSIONS_ENABLED, False):
            return False
    except Exception:
        _logger.exception("otel-sessions: could not read %s", OTEL_SESSIONS_ENABLED)
        return False
    added = _install_span_processor()
    _install_log_processor()
    return added


def _install_span_processor() -> bool:
    try:
        provider = trace.get_tracer_provider()
        add = getattr(provider, "add_span_processor", None)
        if add is None:
            _logger.warning(
                "otel-sessions: %s=true but the tracer provider (%s) takes no span processors; "
                "is an OpenTelemetry SDK configurator (e.g. opentelemetry-distro) installed?",
                OTEL_SESSIONS_ENABLED,
                type(provider).__name__,
            )
            return False
        add(SessionSpanProcessor())
        _logger.debug("otel-sessions: SessionSpanProcessor added to %r", provider)
        return True
    except Exception:
        _logger.exception("otel-sessions: could not add SessionSpanProcessor")
        return False


def _install_log_processor() -> bool:
    """``SessionLogProcessor`` ahead of the global SDK ``LoggerProvider``'s processors; True
    when added. Not the SDK's provider (none configured): nothing, at debug level."""
    try:
        provider = get_logger_provider()
        if not isinstance(provider, LoggerProvider):
            _logger.debug(
                "otel-sessions: the logger provider (%s) is not the SDK's; log records are not stamped",
                type(provider).__name__,
            )
            return False
        if not _add_first(provider, SessionLogProcessor()):
            _logger.warning(
                "otel-sessions: cannot put SessionLogProcessor ahead of the exporting processors of "
                "this SDK's LoggerProvider; log records are not stamped (add it yourself, first)"
            )
            return False
        _logger.debug("otel-sessions: SessionLogProcessor added first to %r", provider)
        return True
    except Exception:
        _logger.exception("otel-sessions: could not add SessionLogProcessor")
        return False


def _add_first(provider: LoggerProvider, processor: LogRecordProcessor) -> bool:
    """Put ``processor`` before the processors ``provider`` already has.

    The SDK only appends (``add_log_record_processor``) and runs processors in that order, but
    the configurator has already added the exporting ones. This uses the SDK's synchronous
    multi-processor (its tuple of processors and its lock, the same from SDK 1.25 to 1.45),
    checked here; returns False, changing nothing, when they are not as expected (e.g. a
    concurrent multi-processor, whose order is not defined anyway).
    """
    multi = getattr(provider, "_multi_log_record_processor", None)
    if not isinstance(multi, SynchronousMultiLogRecordProcessor):
        return False
    lock = getattr(multi, "_lock", None)
    if lock is None or not isinstance(getattr(multi, "_log_record_processors", None), tuple):
        return False
    with lock:
        multi._log_record_processors = (processor, *multi._log_record_processors)
    return True
