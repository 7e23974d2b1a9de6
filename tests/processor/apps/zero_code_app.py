"""Run under ``opentelemetry-instrument``: no otel-sessions setup here, only the context API.
Prints ``SESSION <id>``; then its spans and log records reach the console exporters."""

import logging

from opentelemetry import trace

from otel_sessions.processor import session

tracer = trace.get_tracer("zero-code-app")
log = logging.getLogger("zero-code-app")
log.warning("zero-outside")
with session(user_id="u-zero", name="Zero code") as active:
    print(f"SESSION {active.session_id}", flush=True)
    with tracer.start_as_current_span("zero-root"):
        tracer.start_span("zero-child").end()
        log.warning("zero-inside")
