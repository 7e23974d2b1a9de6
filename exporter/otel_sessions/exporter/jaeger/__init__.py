"""The Jaeger-compatible query API (what Grafana and Jaeger UI call) and its index hook."""
