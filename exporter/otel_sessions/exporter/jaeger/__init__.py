"""The Jaeger-compatible query API (what Grafana and Jaeger UI call) and its index hook.

``routes`` (the ``/api`` routes) -> ``search`` (reads through the store and the service
index) -> ``params`` (query parameters) and ``translate`` (OTLP -> Jaeger JSON, the synthetic
session trace); ``index`` is the after-store hook that records services, operations and
synthetic trace ids.
"""
