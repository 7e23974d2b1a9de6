"""Bytes in flight: one bound on the OTLP request bodies a process holds at once.

Every export request, on either transport, takes a :class:`Lease` on the process's
:class:`InflightBytes` before it holds a body and gives it back when it is answered:

* OTLP/HTTP takes the ``Content-Length`` before it reads a byte (a body without one grows
  the lease as its chunks arrive), then resizes the lease to the decoded body when a
  ``Content-Encoding`` was undone;
* OTLP/gRPC takes the message's length when the handler gets it (gRPC core has read and
  decompressed the message by then).

A lease that would take the total over the bound raises :class:`~..errors.Overloaded`
(HTTP 503 with ``Retry-After``, gRPC ``UNAVAILABLE`` with ``RetryInfo``): the exporter
retries later, and the process's memory stays within a known multiple of the bound whatever
the number of clients. Since the bound is at least ``--max-request-bytes`` (``settings.py``)
and no lease grows past that, a request alone is always taken.

The counter lives in one event loop (the process's), so taking and giving back need no lock.
"""

from __future__ import annotations

from otel_sessions.exporter.errors import Overloaded
from otel_sessions.exporter.metrics import METRICS

__all__ = ["InflightBytes", "Lease"]


class InflightBytes:
    """The bytes held by the requests of one process, within ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.current = 0
        #: the highest ``current`` seen (tests and the ``..._peak`` gauge)
        self.peak = 0

    def lease(self) -> Lease:
        """An empty lease; give it back with :meth:`Lease.release` (or use it as a context manager)."""
        return Lease(self)

    def _take(self, size: int) -> None:
        if self.current + size > self.limit:
            raise Overloaded(f"too many request bytes in flight ({self.current} of {self.limit} held, "
                             f"{size} more asked): retry later")
        self.current += size
        METRICS.inflight_bytes.inc(size)
        if self.current > self.peak:
            self.peak = self.current
            METRICS.inflight_bytes_peak.set(self.peak)

    def _give(self, size: int) -> None:
        self.current -= size
        METRICS.inflight_bytes.dec(size)


class Lease:
    """The bytes one request holds."""

    __slots__ = ("_pool", "size")

    def __init__(self, pool: InflightBytes) -> None:
        self._pool = pool
        self.size = 0

    def resize(self, size: int) -> None:
        """Hold ``size`` bytes from now on: growing raises :class:`Overloaded` when the pool has
        no room (the lease then keeps what it held); shrinking always succeeds."""
        if size > self.size:
            self._pool._take(size - self.size)
        elif size < self.size:
            self._pool._give(self.size - size)
        self.size = size

    def grow(self, extra: int) -> None:
        """Hold ``extra`` bytes more (see :meth:`resize`)."""
        self.resize(self.size + extra)

    def release(self) -> None:
        """Give everything back (idempotent)."""
        self.resize(0)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
