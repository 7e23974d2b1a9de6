"""Forwarding every stored request on over OTLP, enriched with its session."""
