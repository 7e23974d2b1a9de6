"""Zero-code: ``opentelemetry-instrument`` adds ``SessionSpanProcessor`` when enabled.

Registered as an ``opentelemetry_pre_instrument`` entry point. ``opentelemetry-instrument``
runs the distro, then the configurator (which sets the global ``TracerProvider`` and its
exporting processors), then the ``opentelemetry_pre_instrument`` hooks, then the
instrumentors. So this hook adds one processor to the provider the configurator made, without
replacing the user's distro or configurator, before any instrumentation produces a span.

Environment (all optional):

- ``OTEL_SESSIONS_ENABLED=true`` turns it on (default off: installing is not enabling);
- ``OTEL_SESSIONS_BAGGAGE=true`` reads and writes the session keys as W3C baggage;
- ``OTEL_SESSIONS_NORMALIZE=false`` stops copying other tools' attributes onto the
  canonical names.
"""

from __future__ import annotations

import logging

from opentelemetry import trace

from .processor import SessionSpanProcessor
from .settings import OTEL_SESSIONS_ENABLED, env_flag

__all__ = ["install"]

_logger = logging.getLogger(__name__)


def install() -> bool:
    """Add ``SessionSpanProcessor`` to the global tracer provider when ``OTEL_SESSIONS_ENABLED``
    is true. Returns True when added. Never raises (a hook must not stop the app)."""
    try:
        if not env_flag(OTEL_SESSIONS_ENABLED, False):
            return False
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
