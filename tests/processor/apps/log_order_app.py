"""``install()`` with a global LoggerProvider that already has an exporting processor (as the SDK's
configurator leaves it), one that writes each record out as JSON the moment it is emitted (so
attributes added after it would be missing): prints those records, one JSON object a line."""

import io
import logging
import os
import warnings

from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

try:
    from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter as ConsoleLogExporter
except ImportError:  # older SDKs
    from opentelemetry.sdk._logs.export import ConsoleLogExporter

from otel_sessions.processor import session
from otel_sessions.processor.autoinstrument import install

os.environ["OTEL_SESSIONS_ENABLED"] = "true"
written = io.StringIO()
provider = LoggerProvider()
exporter = ConsoleLogExporter(out=written, formatter=lambda record: record.to_json(indent=None) + "\n")
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))  # writes in on_emit
set_logger_provider(provider)
trace.set_tracer_provider(TracerProvider())
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=provider))

install()
with session("sess-order", user_id="u-order"):
    logging.getLogger("app").warning("inside")
print(written.getvalue(), end="")
