"""GenAI events sent through the OpenTelemetry Logs API (stored as session logs) are part of
the session's transcript."""

from __future__ import annotations

import json
import urllib.request

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest


def _post_logs(service, request: ExportLogsServiceRequest) -> None:
    http = urllib.request.Request(service.http_url + "/v1/logs", data=request.SerializeToString(),
                                  headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(http, timeout=30) as response:
        assert response.status == 200


def test_log_events_of_a_session_read_as_its_messages(service):
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add()
    for i, (event, body) in enumerate((("gen_ai.user.message", {"content": "where is my order?"}),
                                       ("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                                                          "message": {"role": "assistant",
                                                                      "content": "It ships today."}}))):
        record = records.log_records.add(time_unix_nano=1_700_000_000_000_000_000 + i * 1_000_000,
                                         trace_id=bytes([7]) * 16, span_id=bytes([i + 1]) * 8, event_name=event)
        record.attributes.add(key="session.id").value.string_value = "sess-log-transcript"
        record.attributes.add(key="gen_ai.system").value.string_value = "openai"

        def fill(any_value, value):
            if isinstance(value, dict):
                for key, item in value.items():
                    fill(any_value.kvlist_value.values.add(key=key).value, item)
            elif isinstance(value, int):
                any_value.int_value = value
            else:
                any_value.string_value = value

        fill(record.body, body)
    _post_logs(service, request)
    with urllib.request.urlopen(service.http_url + "/v1/sessions/sess-log-transcript/messages", timeout=30) as r:
        messages = json.loads(r.read())["data"]
    texts = [(m["role"], [p.get("text") for p in m["content"]]) for m in messages]
    assert texts == [("user", ["where is my order?"]), ("assistant", ["It ships today."])]
