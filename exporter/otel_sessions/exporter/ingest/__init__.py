"""From OTLP requests to session write records: the receivers, grouping, pricing."""
