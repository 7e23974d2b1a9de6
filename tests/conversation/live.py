"""Sending hand-built spans to a running service and reading its REST answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from tests.conversation.builders import any_value


def stamp(data: TracesData, **ids: str) -> TracesData:
    """Every span of ``data`` with these attributes (``session__id="s"`` for ``session.id``)."""
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for key, value in ids.items():
                    span.attributes.add(key=key.replace("__", "."), value=any_value(value))
    return data


def post(service, data: TracesData) -> None:
    """One OTLP/HTTP protobuf request of ``data``."""
    body = ExportTraceServiceRequest(resource_spans=data.resource_spans).SerializeToString()
    request = urllib.request.Request(service.http_url + "/v1/traces", data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def get(service, path: str, expect: int = 200):
    try:
        with urllib.request.urlopen(service.http_url + path, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    assert status == expect, (path, status, body[:300])
    return json.loads(body)
