"""otel-sessions span processor."""
