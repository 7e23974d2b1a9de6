"""``SessionGroupingSpanProcessor``: export finished spans grouped by session.

A drop-in for the SDK's ``BatchSpanProcessor`` in front of any ``SpanExporter``: finished spans
wait in memory, grouped by ``session.id`` (spans without one form their own group), and a
background thread hands them to the exporter so that each ``export`` call carries one or
more whole session groups. A receiver therefore sees a session's spans of one flush window
together instead of spread over unrelated batches.

Bounds (argument, else ``OTEL_BSP_*`` env var, else default; see ``settings``):

- memory: at most ``max_queue_size`` spans wait; more are dropped, counted in
  ``dropped_spans`` and logged (a warning on the first drop, then a count per flush);
- delay: a span waits at most ``schedule_delay_millis`` (plus the export in progress); an
  export starts early when ``max_export_batch_size`` spans are waiting;
- batch: an export call carries at most ``max_export_batch_size`` spans; a session group
  larger than that is split into calls that carry only that session's spans;
- time: ``force_flush`` and ``shutdown`` return by their deadline (default
  ``export_timeout_millis``) even when the exporter hangs.

Fork-safe: in a child process (``os.fork``) the queue starts empty and a new worker runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from .attributes import SESSION_ID
from .settings import GroupingSettings

__all__ = ["SessionGroupingSpanProcessor"]

_logger = logging.getLogger(__name__)

# The SDK's key for "do not trace the exporter's own I/O"; a plain string in the API.
_SUPPRESS_INSTRUMENTATION_KEY = getattr(
    otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation"
)


class SessionGroupingSpanProcessor(SpanProcessor):
    """Export finished spans to ``exporter`` grouped by session (see the module docstring).

    Args:
        exporter: any ``SpanExporter``; it is shut down by ``shutdown()``.
        schedule_delay_millis: ``OTEL_BSP_SCHEDULE_DELAY``, default 5000.
        max_queue_size: ``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048.
        max_export_batch_size: ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, default 512.
        export_timeout_millis: ``OTEL_BSP_EXPORT_TIMEOUT``, default 30000; the default
            deadline of ``force_flush`` and ``shutdown``.

    Raises:
        ValueError: an argument is not positive, or the batch is larger than the queue.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        schedule_delay_millis: float | None = None,
        max_queue_size: int | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
    ) -> None:
        self._exporter = exporter
        self.settings = GroupingSettings.resolve(
            schedule_delay_millis, max_queue_size, max_export_batch_size, export_timeout_millis
        )
        self._dropped = 0
        self._is_shutdown = False
        self._init_state()
        self._start_worker()
        weak_reinit = weakref.WeakMethod(self._at_fork_reinit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: (method := weak_reinit()) is not None and method())

    # --- state (fresh at start and in a forked child) ------------------------------------------
    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._groups: dict[str | None, list[ReadableSpan]] = {}
        self._queued = 0
        self._dropped_unreported = 0
        self._flush_waiters: list[threading.Event] = []

    def _start_worker(self) -> None:
        self._worker = threading.Thread(
            target=self._run, name="otel-sessions-grouping", daemon=True
        )
        self._worker.start()

    def _at_fork_reinit(self) -> None:
        # The parent's waiting spans belong to the parent: the child starts with an empty queue.
        self._init_state()
        if not self._is_shutdown:
            self._start_worker()

    @property
    def dropped_spans(self) -> int:
        """Spans dropped because ``max_queue_size`` spans were already waiting."""
        return self._dropped

    # --- SpanProcessor ------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing: spans are queued when they end."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue ``span`` in its session's group, or count it dropped when the queue is full.
        Never blocks on the exporter, never raises."""
        try:
            if not span.context.trace_flags.sampled:
                return
            key = span.attributes.get(SESSION_ID) if span.attributes else None
            first_drop = False
            with self._lock:
                if self._is_shutdown:
                    return
                if self._queued >= self.settings.max_queue_size:
                    self._dropped += 1
                    self._dropped_unreported += 1
                    first_drop = self._dropped == 1
                else:
                    group = self._groups.get(key)  # type: ignore[arg-type]
                    if group is None:
                        self._groups[key] = [span]  # type: ignore[index]
                    else:
                        group.append(span)
                    self._queued += 1
                    if self._queued == self.settings.max_export_batch_size:
                        self._wakeup.notify()
            if first_drop:
                _logger.warning(
                    "otel-sessions: span queue full (%d spans); dropping spans until the exporter "
                    "catches up (see OTEL_BSP_MAX_QUEUE_SIZE)",
                    self.settings.max_queue_size,
                )
        except Exception:
            _logger.debug("otel-sessions: on_end failed", exc_info=True)

    def force_flush(self, timeout_millis: float | None = None) -> bool:
        """Export every waiting span now; True when done within ``timeout_millis`` (default:
        ``export_timeout_millis``), False when the deadline passed first."""
        timeout = (timeout_millis if timeout_millis is not None else self.settings.export_timeout_millis) / 1000
        done = threading.Event()
        with self._lock:
            if self._is_shutdown:
                return True
            self._flush_waiters.append(done)
            self._wakeup.notify()
        return done.wait(timeout)

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Export what is waiting, stop the worker and shut the exporter down, returning by
        ``timeout_millis`` (default ``export_timeout_millis``) even when the exporter hangs.
        Idempotent: later calls do nothing."""
        with self._lock:
            if self._is_shutdown:
                return
            self._is_shutdown = True
            self._wakeup.notify()
        timeout = (timeout_millis if timeout_millis is not None else self.settings.export_timeout_millis) / 1000
        self._worker.join(timeout)
        if self._worker.is_alive():
            _logger.warning(
                "otel-sessions: exporter still busy after %.0f ms at shutdown; spans still waiting are lost",
                timeout * 1000,
            )
        try:
            self._exporter.shutdown()
        except Exception:
            _logger.exception("otel-sessions: exporter shutdown failed")

    # --- worker -------------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.settings.schedule_delay_millis / 1000
        batch_size = self.settings.max_export_batch_size
        while True:
            with self._lock:
                deadline = time.monotonic() + delay
                while not self._is_shutdown and not self._flush_waiters and self._queued < batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wakeup.wait(remaining)
                stopping = self._is_shutdown
                groups, self._groups, self._queued = self._groups, {}, 0
                waiters, self._flush_waiters = self._flush_waiters, []
                dropped, self._dropped_unreported = self._dropped_unreported, 0
            if dropped:
                _logger.warning("otel-sessions: dropped %d spans (queue full)", dropped)
            self._export_groups(groups)
            for waiter in waiters:
                waiter.set()
            if stopping:
                return

    def _export_groups(self, groups: dict[str | None, list[ReadableSpan]]) -> None:
        batch_size = self.settings.max_export_batch_size
        batch: list[ReadableSpan] = []
        for spans in groups.values():
            if len(spans) > batch_size:  # one session larger than a batch: calls of its own
                if batch:
                    self._export(batch)
                    batch = []
                for start in range(0, len(spans), batch_size):
                    self._export(spans[start : start + batch_size])
                continue
            if len(batch) + len(spans) > batch_size:
                self._export(batch)
                batch = []
            batch.extend(spans)
        if batch:
            self._export(batch)

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            self._exporter.export(batch)
        except Exception:  # a failing exporter never reaches the app
            _logger.exception("otel-sessions: exporting %d spans failed", len(batch))
        finally:
            otel_context.detach(token)
