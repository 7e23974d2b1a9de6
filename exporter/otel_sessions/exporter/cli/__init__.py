"""The ``otel-sessions`` command: ``serve``, the lookups, ``demo`` (``python -m otel_sessions.exporter.cli``)."""

from otel_sessions.exporter.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
