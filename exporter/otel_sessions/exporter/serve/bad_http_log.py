"""One short line, not a traceback, for bytes the HTTP port cannot read as HTTP/1.1.

aiohttp logs every request it cannot parse at ERROR with a traceback (``aiohttp.server``,
"Error handling request"). The usual cause is harmless and repeated: an OTLP/gRPC exporter
(HTTP/2, whose connection preface starts ``PRI * HTTP/2.0``) pointed at the HTTP port, which
retries with backoff and prints a traceback each time. :class:`BadHttpLogFilter` turns such a
record into one WARNING line saying what arrived and where it belongs, at most once per
:data:`INTERVAL_S` per kind (a client sending garbage cannot flood the log); the client has
already had its 400. Other errors of that logger pass unchanged.
"""

from __future__ import annotations

import logging
import time

__all__ = ["BadHttpLogFilter", "install", "INTERVAL_S"]

#: Seconds between two lines of the same kind.
INTERVAL_S = 60.0


class BadHttpLogFilter(logging.Filter):
    """A filter for the ``aiohttp.server`` logger (see the module docstring)."""

    def __init__(self, clock=time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        http2 = "PRI" in str(error)
        kind = "http2" if http2 else "bad"
        now = self.clock()
        if now - self.last.get(kind, -INTERVAL_S) < INTERVAL_S:
            return False
        self.last[kind] = now
        if http2:
            message = ("an HTTP/2 client (an OTLP/gRPC exporter?) connected to the HTTP port and was refused: "
                       "send OTLP/gRPC to the gRPC port (--grpc-listen, default 4317)")
        else:
            message = f"a request the HTTP port could not read was refused with 400 ({type(error).__name__})"
        record.msg, record.args, record.exc_info, record.exc_text = message, (), None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install() -> None:
    """Add the filter to the ``aiohttp.server`` logger once (idempotent)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadHttpLogFilter) for f in logger.filters):
        logger.addFilter(BadHttpLogFilter())
