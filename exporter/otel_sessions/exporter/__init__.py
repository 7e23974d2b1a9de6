"""otel-sessions collector plugin: OTLP receiver and Redis session store."""
