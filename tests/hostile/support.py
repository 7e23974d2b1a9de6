"""The hostile-input suite's tools: requests of good sessions with one bad span, raw sends over
every transport, and checks that the good data is stored exactly and every lookup still
answers valid JSON / protobuf.

Requests are built with the OTLP protobuf classes and sent raw (``http.client`` for OTLP/HTTP,
a bare gRPC channel for OTLP/gRPC), so nothing on the client side cleans a value up.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from otel_sessions.exporter.otlp_json import message_to_json
from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRANSPORTS = ("http-proto", "http-json", "grpc")
GOOD_SERVICE = "good-svc"
GOOD_SESSIONS = 9

_GRPC_AS_HTTP = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.RESOURCE_EXHAUSTED: 413, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


# --- building requests -------------------------------------------------------------------------

def set_value(target: AnyValue, value) -> AnyValue:
    """Fill an AnyValue from a Python value: bool, int (int64), float (double), str, bytes,
    list (arrayValue), dict (kvlistValue)."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()
        for item in value:
            set_value(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        for key, item in value.items():
            kv = target.kvlist_value.values.add()
            kv.key = key
            set_value(kv.value, item)
    else:
        raise TypeError(value)
    return target


def add_attributes(holder, attributes: dict) -> None:
    for key, value in attributes.items():
        kv = holder.attributes.add()
        kv.key = key
        set_value(kv.value, value)


def ids(tag: str, n: int) -> tuple[bytes, bytes]:
    """A trace id and a span id, stable for (tag, n), never zero."""
    import hashlib

    digest = hashlib.blake2b(f"{tag}/{n}".encode(), digest_size=24).digest()
    return digest[:16], digest[16:]


@dataclass
class Expected:
    spans: int
    traces: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    trace_ids: list[str] = field(default_factory=list)


@dataclass
class Hostile:
    """A request of :data:`GOOD_SESSIONS` good sessions (session ``i`` has ``i + 1`` spans in
    one trace) and, when added, bad spans of their own."""

    tag: str
    request: ExportTraceServiceRequest = field(default_factory=ExportTraceServiceRequest)
    expected: dict[str, Expected] = field(default_factory=dict)
    now_ns: int = field(default_factory=lambda: time.time_ns() - 60_000_000_000)

    def __post_init__(self) -> None:
        rs = self.request.resource_spans.add()
        add_attributes(rs.resource, {"service.name": GOOD_SERVICE, "deployment.environment": "test"})
        scope = rs.scope_spans.add()
        scope.scope.name = "hostile-suite"
        for i in range(GOOD_SESSIONS):
            sid = f"sess-{self.tag}-good-{i}"
            trace_id, root_id = ids(sid, 0)
            for j in range(i + 1):
                span = scope.spans.add()
                span.trace_id = trace_id
                span.span_id = ids(sid, j)[1]
                if j:
                    span.parent_span_id = root_id
                span.name = f"step {j}"
                span.kind = Span.SPAN_KIND_INTERNAL
                span.start_time_unix_nano = self.now_ns + j * 1_000_000
                span.end_time_unix_nano = span.start_time_unix_nano + 500_000
                attributes = {"session.id": sid, "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
                              "gen_ai.usage.cost": 0.25}
                if j == 0:
                    attributes.update({"user.id": f"user-{i % 3}", "gen_ai.conversation.id": f"thread-{i % 2}",
                                       "session.name": f"good {i}", "session.metadata.tier": "gold"})
                if j % 2:
                    attributes.update({"gen_ai.request.model": "gpt-4o", "gen_ai.agent.name": "planner",
                                       "gen_ai.tool.name": "search"})
                add_attributes(span, attributes)
            self.expected[sid] = Expected(i + 1, 1, 10 * (i + 1), 5 * (i + 1), 0.25 * (i + 1), [trace_id.hex()])

    def bad_span(self, name: str = "bad", attributes: dict | None = None, resource: dict | None = None,
                 session: str | None = "default") -> Span:
        """A span of its own trace in a new resource (``resource``: its attributes, a service
        name by default), with ``session.id`` = ``sess-<tag>-bad`` unless ``session`` says
        otherwise (None: no session id). The caller may change it further."""
        rs = self.request.resource_spans.add()
        add_attributes(rs.resource, resource if resource is not None else {"service.name": "bad-svc"})
        span = rs.scope_spans.add().spans.add()
        span.trace_id, span.span_id = ids(self.bad_session, 0)
        span.name = name
        span.start_time_unix_nano = self.now_ns
        span.end_time_unix_nano = self.now_ns + 1_000_000
        attributes = dict(attributes or {})
        if session is not None:
            attributes = {"session.id": self.bad_session if session == "default" else session, **attributes}
        add_attributes(span, attributes)
        return span

    @property
    def bad_session(self) -> str:
        return f"sess-{self.tag}-bad"


# --- sending -----------------------------------------------------------------------------------

@dataclass
class Outcome:
    """An export's answer: ``status`` as HTTP (gRPC codes mapped: OK 200, INVALID_ARGUMENT 400,
    UNAVAILABLE 503, INTERNAL and anything unlisted 500...)."""

    transport: str
    status: int
    message: str = ""
    response: ExportTraceServiceResponse | None = None

    def __str__(self) -> str:
        return f"{self.transport}: {self.status} {self.message[:300]!r}"


def post(http_url: str, body: bytes, content_type: str = PROTOBUF, encoding: str | None = None,
         transport: str = "http") -> Outcome:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    connection = http.client.HTTPConnection(http_url.removeprefix("http://"), timeout=60)
    try:
        connection.request("POST", "/v1/traces", body=body, headers=headers)
        reply = connection.getresponse()
        data = reply.read()
        status = reply.status
    finally:
        connection.close()
    if status == 200:
        response = ExportTraceServiceResponse()
        if content_type == JSON:
            from otel_sessions.exporter.otlp_json import parse_traces_json

            parse_traces_json(data, response)
        else:
            response.ParseFromString(data)
        return Outcome(transport, 200, response.partial_success.error_message, response)
    try:
        if content_type == JSON:
            message = json.loads(data).get("message", "")
        else:
            message = status_pb2.Status.FromString(data).message
    except Exception:  # an answer that is not a Status is a failure in itself
        message = f"(not a google.rpc.Status) {data[:200]!r}"
    return Outcome(transport, status, message)


def export_grpc(grpc_endpoint: str, body: bytes, compression: grpc.Compression | None = None) -> Outcome:
    with grpc.insecure_channel(grpc_endpoint, options=[("grpc.max_send_message_length", 128 << 20)]) as channel:
        export = channel.unary_unary(EXPORT)
        try:
            data = export(body, timeout=60, compression=compression)
        except grpc.RpcError as error:
            return Outcome("grpc", _GRPC_AS_HTTP.get(error.code(), 500), f"{error.code().name}: {error.details()}")
    response = ExportTraceServiceResponse.FromString(data)
    return Outcome("grpc", 200, response.partial_success.error_message, response)


def send(running, request: ExportTraceServiceRequest, transport: str) -> Outcome:
    """Send ``request`` as it is over one of :data:`TRANSPORTS`."""
    if transport == "http-proto":
        return post(running.http_url, request.SerializeToString(), PROTOBUF, transport=transport)
    if transport == "http-json":
        return post(running.http_url, message_to_json(request), JSON, transport=transport)
    if transport == "grpc":
        return export_grpc(running.grpc_endpoint, request.SerializeToString())
    raise ValueError(transport)


# --- checking ----------------------------------------------------------------------------------

class NotStrictJson(ValueError):
    pass


def _refuse_constant(name: str):
    raise NotStrictJson(f"bare {name} in JSON")


def strict_json(data: bytes):
    """JSON as a browser's ``JSON.parse`` takes it: no bare NaN / Infinity."""
    return json.loads(data, parse_constant=_refuse_constant)


def get(http_url: str, path: str) -> tuple[int, bytes, str]:
    connection = http.client.HTTPConnection(http_url.removeprefix("http://"), timeout=60)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read(), reply.getheader("Content-Type", "")
    finally:
        connection.close()


def quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class Problems(list):
    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.append(what)
        return ok


def get_json(problems: Problems, http_url: str, path: str, expect: tuple[int, ...] = (200,)):
    status, data, _type = get(http_url, path)
    if not problems.check(status in expect, f"GET {path}: {status} {data[:300]!r}"):
        return None
    try:
        return strict_json(data)
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append(f"GET {path}: not valid JSON ({exc}): {data[:300]!r}")
        return None


def lookups_problems(running, max_traces: int = 30) -> Problems:
    """Every lookup over what is stored: REST list (the web page's call too), detail, spans
    (JSON and protobuf), the gRPC SessionService, the Jaeger-compatible API. Returns what went
    wrong (empty when all is well). Lookups of one kind run side by side."""
    problems = Problems()
    url = running.http_url
    sessions = []
    for path in ("/v1/sessions", "/v1/sessions?limit=50&offset=0", "/v1/sessions?limit=500",
                 "/v1/sessions?limit=500&sort_by=tokens", "/v1/sessions?limit=500&sort_by=cost",
                 "/v1/sessions?limit=500&sort_by=duration&sort_order=asc"):
        listed = get_json(problems, url, path)
        if listed is not None and path == "/v1/sessions?limit=500":
            sessions = listed["data"]

    def per_session(summary: dict) -> list[str]:
        sid = summary["id"]
        mine = Problems()
        detail = get_json(mine, url, f"/v1/sessions/{quote(sid)}")
        found = [t["trace_id"] for t in (detail or {}).get("traces", [])[:max_traces]]
        get_json(mine, url, f"/v1/sessions/{quote(sid)}/spans")
        status, data, _type = get(url, f"/v1/sessions/{quote(sid)}/spans?format=otlp-proto")
        if mine.check(status == 200, f"GET spans?format=otlp-proto of {sid!r}: {status} {data[:200]!r}"):
            try:
                TracesData.FromString(data)
            except Exception as exc:
                mine.append(f"spans of {sid!r}: not a TracesData ({exc})")
        if summary.get("span_count", 0) <= 1000:
            get_json(mine, url, f"/api/sessions/{quote(sid)}/trace")
        for trace_id in found:
            get_json(mine, url, f"/api/traces/{trace_id}")
        try:
            stub.GetSession(pb.GetSessionRequest(session_id=sid), timeout=60)
            stub.GetSessionSpans(pb.GetSessionSpansRequest(session_id=sid), timeout=60)
        except grpc.RpcError as error:
            mine.append(f"gRPC GetSession {sid!r}: {error.code().name} {error.details()}")
        return mine

    with grpc.insecure_channel(running.grpc_endpoint,
                               options=[("grpc.max_receive_message_length", 256 << 20)]) as channel:
        stub = pb_grpc.SessionServiceStub(channel)
        try:
            listed = stub.ListSessions(pb.ListSessionsRequest(limit=500), timeout=60)
            problems.check(len(listed.sessions) == len(sessions),
                           f"gRPC ListSessions: {len(listed.sessions)} sessions, REST {len(sessions)}")
        except grpc.RpcError as error:
            problems.append(f"gRPC ListSessions: {error.code().name} {error.details()}")
        with ThreadPoolExecutor(6) as pool:
            for found in pool.map(per_session, sessions):
                problems += found

    services = get_json(problems, url, "/api/services")
    for service in (services or {}).get("data") or []:
        get_json(problems, url, f"/api/services/{quote(service)}/operations")
        get_json(problems, url, f"/api/traces?service={quote(service)}&limit=20&lookback=48h")
    return problems


def good_problems(running, hostile: Hostile) -> Problems:
    """The good sessions, each stored exactly (spans, traces, tokens, cost), read over REST."""
    problems = Problems()
    for sid, want in hostile.expected.items():
        detail = get_json(problems, running.http_url, f"/v1/sessions/{quote(sid)}")
        if detail is None:
            continue
        got = (detail["span_count"], detail["trace_count"], detail["input_tokens"], detail["output_tokens"],
               detail["cost_usd"])
        problems.check(got == (want.spans, want.traces, want.input_tokens, want.output_tokens, want.cost_usd),
                       f"{sid}: stored (spans, traces, in, out, cost) {got}, sent "
                       f"{(want.spans, want.traces, want.input_tokens, want.output_tokens, want.cost_usd)}")
    return problems


def bad_session(running, hostile: Hostile):
    """The bad span's session as REST shows it, or None when it was not stored."""
    status, data, _type = get(running.http_url, f"/v1/sessions/{quote(hostile.bad_session)}")
    if status == 404:
        return None
    assert status == 200, f"GET the bad session: {status} {data[:300]!r}"
    try:
        return strict_json(data)
    except ValueError as exc:
        raise AssertionError(f"GET the bad session: {exc}: {data[:300]!r}") from None
