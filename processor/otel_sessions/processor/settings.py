"""Every setting the processor reads, resolved in one place.

Order for each value: the constructor argument, else the environment variable, else the
default below. A bad argument raises ``ValueError``; a bad environment value is logged and
replaced by the default (the app must start even with a typo in its environment).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

_logger = logging.getLogger(__name__)

# --- OTEL_SESSIONS_* (zero-code and processor switches) -------------------------------------
#: ``true`` makes ``opentelemetry-instrument`` add ``SessionSpanProcessor`` (and ``SessionLogProcessor``
#: to an SDK ``LoggerProvider``). Default ``false``.
OTEL_SESSIONS_ENABLED = "OTEL_SESSIONS_ENABLED"
#: ``true`` reads and writes the session keys as W3C baggage. Default ``false`` (baggage
#: leaves the process in request headers, so it is opt-in).
OTEL_SESSIONS_BAGGAGE = "OTEL_SESSIONS_BAGGAGE"
#: ``false`` turns off the renaming of other tools' attributes onto the canonical names.
#: Default ``true``.
OTEL_SESSIONS_NORMALIZE = "OTEL_SESSIONS_NORMALIZE"

# --- OTEL_BSP_* (the SDK's batch span processor settings, honoured by the grouping processor)
#: Longest time a finished span waits before it is exported, in ms. Default 5000.
OTEL_BSP_SCHEDULE_DELAY = "OTEL_BSP_SCHEDULE_DELAY"
#: Most spans held in memory waiting for export; more are dropped and counted. Default 2048.
OTEL_BSP_MAX_QUEUE_SIZE = "OTEL_BSP_MAX_QUEUE_SIZE"
#: Most spans in one export call. Default 512.
OTEL_BSP_MAX_EXPORT_BATCH_SIZE = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
#: Time allowed to ``force_flush`` and ``shutdown``, in ms. Default 30000.
OTEL_BSP_EXPORT_TIMEOUT = "OTEL_BSP_EXPORT_TIMEOUT"

DEFAULT_SCHEDULE_DELAY_MILLIS = 5000.0
DEFAULT_MAX_QUEUE_SIZE = 2048
DEFAULT_MAX_EXPORT_BATCH_SIZE = 512
DEFAULT_EXPORT_TIMEOUT_MILLIS = 30000.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_flag(name: str, default: bool) -> bool:
    """The boolean environment variable ``name``; unset or unreadable gives ``default``."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    _logger.warning("otel-sessions: %s=%r is not a boolean; using %s", name, raw, default)
    return default


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        _logger.warning("otel-sessions: %s=%r is not a positive number; using %s", name, raw, default)
        return default
    return value


@dataclass(frozen=True)
class GroupingSettings:
    """Limits of ``SessionGroupingSpanProcessor``: memory (queue), delay, batch and timeout."""

    schedule_delay_millis: float
    max_queue_size: int
    max_export_batch_size: int
    export_timeout_millis: float

    @classmethod
    def resolve(
        cls,
        schedule_delay_millis: float | None = None,
        max_queue_size: int | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
    ) -> GroupingSettings:
        """Argument, else ``OTEL_BSP_*`` env var, else default; raises ``ValueError`` when the
        arguments are impossible (non-positive, or a batch larger than the queue)."""
        settings = cls(
            schedule_delay_millis=float(
                schedule_delay_millis
                if schedule_delay_millis is not None
                else _env_number(OTEL_BSP_SCHEDULE_DELAY, DEFAULT_SCHEDULE_DELAY_MILLIS)
            ),
            max_queue_size=int(
                max_queue_size
                if max_queue_size is not None
                else _env_number(OTEL_BSP_MAX_QUEUE_SIZE, DEFAULT_MAX_QUEUE_SIZE)
            ),
            max_export_batch_size=int(
                max_export_batch_size
                if max_export_batch_size is not None
                else _env_number(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, DEFAULT_MAX_EXPORT_BATCH_SIZE)
            ),
            export_timeout_millis=float(
                export_timeout_millis
                if export_timeout_millis is not None
                else _env_number(OTEL_BSP_EXPORT_TIMEOUT, DEFAULT_EXPORT_TIMEOUT_MILLIS)
            ),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ``ValueError`` naming the setting and its env var when a value is impossible."""
        if self.schedule_delay_millis <= 0:
            raise ValueError(f"schedule_delay_millis ({OTEL_BSP_SCHEDULE_DELAY}) must be positive")
        if self.max_queue_size <= 0:
            raise ValueError(f"max_queue_size ({OTEL_BSP_MAX_QUEUE_SIZE}) must be positive")
        if self.max_export_batch_size <= 0:
            raise ValueError(f"max_export_batch_size ({OTEL_BSP_MAX_EXPORT_BATCH_SIZE}) must be positive")
        if self.export_timeout_millis <= 0:
            raise ValueError(f"export_timeout_millis ({OTEL_BSP_EXPORT_TIMEOUT}) must be positive")
        if self.max_export_batch_size > self.max_queue_size:
            raise ValueError(
                f"max_export_batch_size ({OTEL_BSP_MAX_EXPORT_BATCH_SIZE}) must be at most "
                f"max_queue_size ({OTEL_BSP_MAX_QUEUE_SIZE})"
            )
