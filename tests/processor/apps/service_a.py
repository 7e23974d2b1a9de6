"""Service A of the cross-process test: inside a session, calls service B (argv[1]) over HTTP
with W3C trace context and baggage injected; prints its ids and B's answer as JSON."""

from __future__ import annotations

import json
import sys
import urllib.request

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

from otel_sessions.processor import SessionSpanProcessor, session

provider = TracerProvider()
provider.add_span_processor(SessionSpanProcessor(baggage=True))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("service-a")

with session(user_id="u-a", name="Cross-service") as active, tracer.start_as_current_span("a-call") as span:
    headers: dict[str, str] = {}
    propagate.inject(headers)  # traceparent + baggage (the SDK's default propagators)
    request = urllib.request.Request(sys.argv[1], headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    print(
        json.dumps(
            {
                "session_id": active.session_id,
                "thread_id": active.thread_id,
                "trace_id": f"{span.get_span_context().trace_id:032x}",
                "baggage_header": headers.get("baggage", ""),
                "b_answer": answer,
            }
        )
    )
