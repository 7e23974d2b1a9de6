"""The OpenAPI 3.1 description of the HTTP port's lookups, served at ``GET /openapi.json``.

tests/lookups/test_rest.py checks that every route the app serves is described here.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from otel_sessions.exporter.lookup import transcript
from otel_sessions.exporter.lookup.logs import DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT
from otel_sessions.exporter.lookup.messages import MAX_INLINE_DATA, ROLES
from otel_sessions.exporter.lookup.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_TEXT, SORT_KEYS
from otel_sessions.exporter.lookup.span_details import SPAN_KINDS, STATUS_CODES
from otel_sessions.exporter.store.summary import STATUSES

__all__ = ["OPENAPI"]

try:
    _VERSION = version("otel-sessions")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    _VERSION = "0"


def _param(name: str, description: str, schema: dict | None = None, where: str = "query",
           required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path", "description": description,
            "schema": schema or {"type": "string"}}


def _json(ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


_ERR = "#/components/schemas/Error"
_ERRORS = {
    "400": _json(_ERR, "A bad parameter; `parameter` names it"),
    "401": _json(_ERR, "No bearer token, or an unknown one (the service has tokens: --tenants, --query-token)"),
    "403": _json(_ERR, "The token has no `read` scope (DELETE: `admin`)"),
    "503": _json(_ERR, "Redis unavailable; retry after `Retry-After` seconds"),
}
_NOT_FOUND = {"404": _json(_ERR, "Unknown id (another tenant's ids too)")}
_TIME = "RFC 3339 (`2025-01-31T12:00:00Z`) or unix milliseconds"
_PAGE = [
    _param("limit", f"Page size (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}; 0 returns only `total`)",
           {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
    _param("offset", "Sessions to skip", {"type": "integer", "minimum": 0, "default": 0}),
]
_FILTERS = [
    _param("thread_id", "Sessions of this thread (gen_ai.conversation.id)"),
    _param("name", "Case-insensitive substring of the session name"),
    _param("status", "One status or several, comma-separated", {"type": "string", "example": "failed,escalated"}),
    _param("service", "Sessions with spans from this service.name"),
    _param("model", "Sessions that used this model (exact name or prefix, e.g. gpt-4o)"),
    _param("agent", "Sessions with a span of this agent (gen_ai.agent.name, exact)"),
    _param("tool", "Sessions with a span of this tool (gen_ai.tool.name, exact)"),
    _param("environment", "Sessions with spans from this deployment environment (resource attribute "
                          "deployment.environment.name, else deployment.environment; exact)"),
    _param("q", f"Case-insensitive text in the session's name, id, user id, models, services, agents, tools or "
                f"environments (at most {MAX_TEXT} characters)"),
    _param("start_time", f"Sessions that started at or after this time: {_TIME}"),
    _param("end_time", f"Sessions that started at or before this time: {_TIME}"),
    {"name": "metadata", "in": "query", "style": "deepObject", "explode": True,
     "description": "`metadata.<key>=<value>`: session.metadata.<key> equals value (every pair must match)",
     "schema": {"type": "object", "additionalProperties": {"type": "string"}}},
    _param("sort_by", "Sort key", {"type": "string", "enum": list(SORT_KEYS), "default": "start"}),
    _param("sort_order", "Sort order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
]
_LOG_FILTERS = [
    _param("min_severity", "Records from this severity up: TRACE, DEBUG, INFO, WARN, ERROR, FATAL, or a "
           "severity_number 1..24", {"type": "string", "example": "WARN"}),
    _param("start_time", f"Records at or after this time: {_TIME}"),
    _param("end_time", f"Records at or before this time: {_TIME}"),
    _param("trace_id", "Records of this trace (32 hex digits)"),
    _param("span_id", "Records of this span (16 hex digits)"),
    _param("contains", "Case-insensitive text in the record's message"),
    _param("limit", f"Records per page (default {DEFAULT_LOG_LIMIT}, at most {MAX_LOG_LIMIT})",
           {"type": "integer", "minimum": 0, "maximum": MAX_LOG_LIMIT, "default": DEFAULT_LOG_LIMIT}),
    _param("offset", "Records to skip", {"type": "integer", "minimum": 0, "default": 0}),
    _param("format", "json (records), otlp-json (OTLP/JSON LogsData, hex ids) or otlp-proto",
           {"type": "string", "enum": ["json", "otlp-json", "otlp-proto"], "default": "json"}),
]
_LOG_OK = {"200": {"description": "A page of records in time order (`json`), or the page as OTLP LogsData",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LogPage"}},
                               "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}}}
_JAEGER = "Jaeger-compatible query API (what Grafana's Jaeger data source and Jaeger UI call), in Jaeger's JSON shape"
_JAEGER_OK = {"200": {"description": "Jaeger JSON: `data`, `total`, `limit`, `offset`, `errors`",
                      "content": {"application/json": {"schema": {"type": "object"}}}}}
_JAEGER_PATHS = {
    "/api/services": {"get": {"operationId": "jaegerServices", "summary": f"Service names. {_JAEGER}",
                              "responses": _JAEGER_OK}},
    "/api/services/{service}/operations": {"get": {
        "operationId": "jaegerServiceOperations", "summary": "Operation names of a service",
        "parameters": [_param("service", "service.name", where="path")], "responses": _JAEGER_OK}},
    "/api/operations": {"get": {
        "operationId": "jaegerOperations", "summary": "Operations of a service, with span kinds",
        "parameters": [_param("service", "service.name", required=True), _param("spanKind", "Span kind")],
        "responses": _JAEGER_OK}},
    "/api/traces": {"get": {
        "operationId": "jaegerFindTraces",
        "summary": "Search traces; tags session.id, user.id and gen_ai.conversation.id find a session's traces",
        "parameters": [_param("service", "service.name"), _param("operation", "Span name"),
                       _param("tags", "JSON object of tags, e.g. {\"session.id\":\"sess_1\"}"),
                       _param("tag", "key:value (repeatable)"), _param("start", "Earliest start, µs"),
                       _param("end", "Latest start, µs"), _param("limit", "Traces at most"),
                       _param("minDuration", "e.g. 100ms"), _param("maxDuration", "e.g. 1.2s")],
        "responses": _JAEGER_OK}},
    "/api/traces/{trace_id}": {"get": {
        "operationId": "jaegerGetTrace",
        "summary": "One trace; a session's synthetic trace id (sha256(session id)[:16]) returns the whole session",
        "parameters": [_param("trace_id", "32 hex digits", where="path")],
        "responses": {**_JAEGER_OK, "404": {"description": "Unknown trace, Jaeger error shape"}}}},
    "/api/sessions/{session_id}/trace": {"get": {
        "operationId": "jaegerSessionTrace", "summary": "A session as one synthetic trace (its traces under one root)",
        "parameters": [_param("session_id", "Session id", where="path")],
        "responses": {**_JAEGER_OK, "404": {"description": "Unknown session, Jaeger error shape"}}}},
    "/api/dependencies": {"get": {"operationId": "jaegerDependencies",
                                  "summary": "Service dependencies (always empty)", "responses": _JAEGER_OK}},
}
_SESSION_PROPS = {
    "id": {"type": "string"}, "name": {"type": ["string", "null"]}, "user_id": {"type": ["string", "null"]},
    "thread_id": {"type": ["string", "null"]},
    "previous_id": {"type": ["string", "null"],
                    "description": "The session this one follows on from (a follow-up conversation): the first "
                                   "session.previous_id stored, set by session(..., previous_id=...) in the app; "
                                   "null when none"},
    "status": {"type": "string", "enum": list(STATUSES)},
    "start_time": {"type": ["string", "null"], "format": "date-time"},
    "end_time": {"type": ["string", "null"], "format": "date-time"},
    "duration_ms": {"type": "number"}, "last_activity": {"type": ["string", "null"], "format": "date-time"},
    "trace_count": {"type": "integer"}, "span_count": {"type": "integer"}, "error_count": {"type": "integer"},
    "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"},
    "cache_read_tokens": {"type": "integer", "description": "Input tokens read from the prompt cache (part of input_tokens)"},
    "cache_write_tokens": {"type": "integer", "description": "Input tokens written to the prompt cache (part of input_tokens)"},
    "reasoning_tokens": {"type": "integer", "description": "Output tokens spent reasoning (part of output_tokens)"},
    "cost_usd": {"type": "number"}, "cost_estimated": {"type": "boolean"},
    "models": {"type": "array", "items": {"type": "string"}},
    "services": {"type": "array", "items": {"type": "string"}},
    "agents": {"type": "array", "items": {"type": "string"}},
    "tools": {"type": "array", "items": {"type": "string"}},
    "environments": {"type": "array", "items": {"type": "string"},
                     "description": "deployment.environment.name (or deployment.environment) of its spans' resources"},
    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    "truncated": {"type": "boolean"}, "spans_dropped": {"type": "integer"},
    "log_count": {"type": "integer", "description": "Log records of the session (each once)"},
    "error_log_count": {"type": "integer", "description": "Log records with severity_number >= 17 (ERROR and above)"},
    "first_error_log_message": {"type": ["string", "null"],
                                "description": "The first error record's message, at most 512 characters"},
    "logs_dropped": {"type": "integer", "description": "Log records dropped by --max-logs-per-session"},
    "traces": {"type": "array", "items": {"$ref": "#/components/schemas/TraceSummary"},
               "description": "Only in GET /v1/sessions/{id}, in start order"},
    "conversation": {"oneOf": [{"$ref": "#/components/schemas/ConversationFigures"}, {"type": "null"}],
                     "description": "What the conversation amounts to; null when the lookup left it out "
                                    "(beyond the figures one request computes)"},
}
_DURATION = {"type": ["number", "null"]}
_FIGURES_PROPS = {
    "message_count": {"type": "integer", "description": "User and assistant messages of the transcript, each once"},
    "user_messages": {"type": "integer"}, "assistant_messages": {"type": "integer"},
    "first_user_message": {"type": ["string", "null"], "description": "Its text, at most 200 characters"},
    "last_assistant_message": {"type": ["string", "null"], "description": "Its text, at most 200 characters"},
    "model_calls": {"type": "integer"},
    "response_latency_ms": {**_DURATION, "description": "Mean model call duration"},
    "time_to_first_token_ms": {**_DURATION, "description": "Mean over the streamed calls that record it"},
    "tool_calls": {"type": "integer", "description": "Tool executions"},
    "tool_errors": {"type": "integer", "description": "Tool executions that ended in ERROR"},
    "tool_latency_ms": {**_DURATION, "description": "Mean tool execution duration"},
}
_MESSAGE_PAGE = [
    _param("limit", f"Messages per page (default {transcript.DEFAULT_LIMIT}, at most {transcript.MAX_LIMIT})",
           {"type": "integer", "minimum": 0, "maximum": transcript.MAX_LIMIT, "default": transcript.DEFAULT_LIMIT}),
    _param("offset", "Messages to skip", {"type": "integer", "minimum": 0, "default": 0}),
]
_NULLABLE_STRING = {"type": ["string", "null"]}
_PART = {
    "type": "object", "required": ["type"],
    "description": "A content part: {type: text, text}, {type: reasoning, text}, media {type: image|audio|video|"
                   "document|file, mime_type, uri | file_id | data (base64, up to "
                   f"{MAX_INLINE_DATA} characters, else size)}}, or another typed part as recorded",
    "properties": {"type": {"type": "string"}, "text": {"type": "string"}, "mime_type": _NULLABLE_STRING,
                   "uri": {"type": "string"}, "file_id": {"type": "string"}, "data": {"type": "string"},
                   "size": {"type": "integer"}},
}
_MESSAGE_PROPS = {
    "role": {"type": "string", "enum": list(ROLES)},
    "content": {"type": "array", "items": {"$ref": "#/components/schemas/ContentPart"}},
    "tool_calls": {"type": "array", "items": {"type": "object", "properties": {
        "id": _NULLABLE_STRING, "name": _NULLABLE_STRING,
        "arguments": {"description": "JSON value when the arguments are JSON text, else the text as sent"}}}},
    "tool_call_id": {**_NULLABLE_STRING, "description": "On a tool message: the call it answers"},
    "name": {**_NULLABLE_STRING, "description": "Participant name as recorded (or a role other than the four)"},
    "agent": {**_NULLABLE_STRING, "description": "gen_ai.agent.name of the span or its nearest ancestor"},
    "handoff": {"type": "boolean", "description": "First message of an agent other than the previous message's"},
    "model": {**_NULLABLE_STRING, "description": "Assistant messages: the model that answered"},
    "usage": {"type": ["object", "null"], "description": "The model call's tokens, on its first assistant output",
              "properties": {"input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"}}},
    "finish_reason": _NULLABLE_STRING,
    "session_id": {"type": "string"},
    "trace_id": _NULLABLE_STRING, "span_id": _NULLABLE_STRING,
    "time": {"type": ["string", "null"], "format": "date-time",
             "description": "Inputs: the call's start; outputs: its end; log events: the record's time"},
    "source": {"type": "string", "description": "Convention it was read from: gen_ai, gen_ai.events, openinference, "
                                                 "traceloop, vercel.ai, mlflow, langfuse, tool, io"},
    "raw": {"type": "boolean", "description": "Content could not be read (malformed or truncated): shown as text"},
    "redacted": {"type": "boolean",
                 "description": "The recorded value was replaced whole by [redacted] (--redact-attributes)"},
}
_TRANSCRIPT_PROPS = {
    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
    "limit": {"type": "integer"}, "offset": {"type": "integer"},
    "truncated": {"type": "boolean", "description": "More messages follow this page"},
}
_KEY_VALUES = {"type": "object", "additionalProperties": True,
               "description": "Attribute values: strings, numbers, booleans, arrays, objects; bytes as base64"}
_SPAN_PROPS = {
    "session_id": {"type": "string"}, "trace_id": {"type": "string"}, "span_id": {"type": "string"},
    "parent_span_id": _NULLABLE_STRING, "name": {"type": "string"},
    "kind": {"type": "string", "enum": list(SPAN_KINDS)},
    "start_time": {"type": ["string", "null"], "format": "date-time"},
    "end_time": {"type": ["string", "null"], "format": "date-time"}, "duration_ms": {"type": "number"},
    "status": {"type": "object", "properties": {"code": {"type": "string", "enum": list(STATUS_CODES)},
                                                "message": _NULLABLE_STRING}},
    "attributes": _KEY_VALUES, "resource": _KEY_VALUES,
    "scope": {"type": "object", "properties": {"name": _NULLABLE_STRING, "version": _NULLABLE_STRING}},
    "events": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "time": {"type": ["string", "null"], "format": "date-time"},
        "attributes": _KEY_VALUES}}},
    "exception": {"type": ["object", "null"], "description": "From the first `exception` event", "properties": {
        "type": _NULLABLE_STRING, "message": _NULLABLE_STRING, "stacktrace": _NULLABLE_STRING}},
    "links": {"type": "array", "items": {"type": "object", "properties": {
        "trace_id": {"type": "string"}, "span_id": {"type": "string"}, "attributes": _KEY_VALUES}}},
    "trace_state": _NULLABLE_STRING,
}
_LIST_PROPS = {
    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}},
    "total": {"type": "integer", "description": "Matching sessions (among the candidates examined when partial)"},
    "limit": {"type": "integer"}, "offset": {"type": "integer"},
    "partial": {"type": "boolean", "description": "A filter no index serves was applied to a bounded candidate "
                                                  "set that did not cover every session: more may match"},
}

OPENAPI: dict = {
    "openapi": "3.1.0",
    "info": {"title": "otel-sessions lookups", "version": _VERSION,
             "description": "Sessions of LLM and agent apps, stored from OpenTelemetry spans and log records. "
                            "OTLP ingest is POST /v1/traces and POST /v1/logs (OTLP/HTTP); this document covers "
                            "the lookups."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "Only when the service has tokens (--tenants, --query-token): "
                                                      "a token with the read scope (DELETE: admin); each "
                                                      "token sees its tenant's sessions only"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}, "parameter": {"type": "string"}}},
            "TraceSummary": {"type": "object", "properties": {
                "trace_id": {"type": "string"}, "root_name": {"type": "string"},
                "start_time": {"type": "string", "format": "date-time"},
                "end_time": {"type": "string", "format": "date-time"}, "duration_ms": {"type": "number"},
                "span_count": {"type": "integer"}, "error_count": {"type": "integer"}, "error": {"type": "boolean"},
                "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"}, "cost_usd": {"type": "number"}}},
            "Session": {"type": "object", "properties": _SESSION_PROPS},
            "ConversationFigures": {"type": "object", "properties": _FIGURES_PROPS},
            "LogRecord": {"type": "object", "properties": {
                "time": {"type": ["string", "null"], "format": "date-time",
                         "description": "time_unix_nano, else observed_time_unix_nano (nanoseconds shown)"},
                "time_unix_nano": {"type": "integer"},
                "observed_time": {"type": ["string", "null"], "format": "date-time"},
                "severity_number": {"type": "integer", "minimum": 0, "maximum": 24},
                "severity_text": {"type": "string"},
                "body": {"description": "The record's body as a plain JSON value"},
                "event_name": {"type": ["string", "null"]},
                "service": {"type": ["string", "null"], "description": "service.name of the record's resource"},
                "trace_id": {"type": ["string", "null"]}, "span_id": {"type": ["string", "null"]},
                "attributes": {"type": "object"}, "resource": {"type": "object"},
                "session_id": {"type": "string", "description": "Only in a thread's records"}}},
            "LogPage": {"type": "object", "properties": {
                "id": {"type": "string", "description": "The session or thread id"},
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/LogRecord"}},
                "total": {"type": "integer", "description": "Records matching the filters"},
                "limit": {"type": "integer"}, "offset": {"type": "integer"}}},
            "SessionList": {"type": "object", "properties": _LIST_PROPS},
            "Thread": {"type": "object", "properties": {"id": {"type": "string"}, **_LIST_PROPS}},
            "UserSessions": {"type": "object", "properties": {"id": {"type": "string"}, **_LIST_PROPS}},
            "Trace": {"type": "object", "required": ["trace_id", "session_id", "span_count"], "properties": {
                "trace_id": {"type": "string", "description": "32 lowercase hex digits"},
                "session_id": {"type": ["string", "null"],
                               "description": "The session the trace joined; null while none of its spans "
                                              "named one (its spans are kept by trace id)"},
                "span_count": {"type": "integer", "description": "Spans of the trace stored"}}},
            "ContentPart": _PART,
            "Message": {"type": "object", "properties": _MESSAGE_PROPS},
            "SessionMessages": {"type": "object",
                                "properties": {"session_id": {"type": "string"}, **_TRANSCRIPT_PROPS}},
            "ThreadMessages": {"type": "object",
                               "properties": {"thread_id": {"type": "string"}, **_TRANSCRIPT_PROPS}},
            "SpanDetails": {"type": "object", "properties": _SPAN_PROPS},
            "SessionUsage": {"type": "object", "properties": {
                "session_id": {"type": "string"},
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/SpanUsage"}}}},
            "SpanUsage": {"type": "object", "properties": {
                "trace_id": {"type": "string"}, "span_id": {"type": "string"},
                "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
                "cache_read_tokens": {"type": "integer"}, "cache_write_tokens": {"type": "integer"},
                "reasoning_tokens": {"type": "integer"}, "cost_usd": {"type": "number"},
                "cost_estimated": {"type": "boolean", "description": "From the price table"},
                "aggregate": {"type": "boolean", "description": "An agent/chain span summing its children's usage"},
                "counted": {"type": "boolean", "description": "Counted in the session summary (model calls; an "
                                                              "aggregating span only in a trace without them)"}}},
        },
    },
    "security": [{}, {"bearer": []}],
    "paths": {
        "/v1/sessions": {"get": {
            "operationId": "listSessions", "summary": "List sessions with filters, sort and paging",
            "parameters": [*_PAGE, _param("user_id", "Sessions of this user (user.id)"), *_FILTERS],
            "responses": {"200": _json("#/components/schemas/SessionList", "A page of sessions"), **_ERRORS}}},
        "/v1/sessions/{session_id}": {
            "get": {"operationId": "getSession", "summary": "One session with its traces",
                    "parameters": [_param("session_id", "Session id", where="path")],
                    "responses": {"200": _json("#/components/schemas/Session", "The session"), **_NOT_FOUND,
                                  **_ERRORS}},
            "delete": {"operationId": "deleteSession", "summary": "Delete a session and its index entries",
                       "parameters": [_param("session_id", "Session id", where="path")],
                       "responses": {"204": {"description": "Deleted"}, **_NOT_FOUND, **_ERRORS}}},
        "/v1/sessions/{session_id}/spans": {"get": {
            "operationId": "getSessionSpans", "summary": "Every stored span of a session as OTLP TracesData",
            "parameters": [_param("session_id", "Session id", where="path"),
                           _param("format", "otlp-json (hex ids) or otlp-proto",
                                  {"type": "string", "enum": ["otlp-json", "otlp-proto"], "default": "otlp-json"})],
            "responses": {"200": {"description": "OTLP TracesData", "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}},
                **_NOT_FOUND, **_ERRORS}}},
        "/v1/sessions/{session_id}/logs": {"get": {
            "operationId": "getSessionLogs", "summary": "A session's log records in time order, filtered and paged",
            "parameters": [_param("session_id", "Session id", where="path"), *_LOG_FILTERS],
            "responses": {**_LOG_OK, **_NOT_FOUND, **_ERRORS}}},
        "/v1/threads/{thread_id}/logs": {"get": {
            "operationId": "getThreadLogs",
            "summary": "The log records of a thread's sessions (its first 500) in time order, each with its session_id",
            "parameters": [_param("thread_id", "Thread id (gen_ai.conversation.id)", where="path"), *_LOG_FILTERS],
            "responses": {**_LOG_OK, **_NOT_FOUND, **_ERRORS}}},
        "/v1/sessions/{session_id}/spans/{span_id}": {"get": {
            "operationId": "getSessionSpan", "summary": "One stored span in full: attributes, resource, scope, "
                                                        "events, exception, links",
            "parameters": [_param("session_id", "Session id", where="path"),
                           _param("span_id", "16 hex digits", where="path"),
                           _param("trace_id", "32 hex digits: which trace, when the span id is in several")],
            "responses": {"200": _json("#/components/schemas/SpanDetails", "The span"),
                          **_NOT_FOUND, **_ERRORS}}},
        "/v1/sessions/{session_id}/messages": {"get": {
            "operationId": "getSessionMessages",
            "summary": "The session's conversation: each message once, in order, rebuilt from the GenAI, "
                       "OpenInference, Traceloop, Vercel AI, Langfuse and MLflow attributes and GenAI events",
            "parameters": [_param("session_id", "Session id", where="path"), *_MESSAGE_PAGE],
            "responses": {"200": _json("#/components/schemas/SessionMessages", "A page of messages"),
                          **_NOT_FOUND, **_ERRORS}}},
        "/v1/sessions/{session_id}/tail": {"get": {
            "operationId": "tailSession",
            "summary": "Server-sent events from the call on: one `data:` event (OTLP/JSON TracesData) per write of "
                       "spans, one `event: logs` event (OTLP/JSON LogsData) per write of log records",
            "parameters": [_param("session_id", "Session id", where="path")],
            "responses": {"200": {"description": "An event stream", "content": {"text/event-stream": {}}},
                          **_NOT_FOUND, **_ERRORS}}},
        "/v1/threads/{thread_id}": {"get": {
            "operationId": "getThread", "summary": "The sessions of a thread in start order",
            "parameters": [_param("thread_id", "Thread id (gen_ai.conversation.id)", where="path"),
                           _param("limit", f"Sessions per page (default and maximum {MAX_LIMIT})",
                                  {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT}),
                           _PAGE[1]],
            "responses": {"200": _json("#/components/schemas/Thread", "The thread"), **_NOT_FOUND, **_ERRORS}}},
        "/v1/threads/{thread_id}/messages": {"get": {
            "operationId": "getThreadMessages",
            "summary": "The conversation of every session of a thread, in order, each message once",
            "parameters": [_param("thread_id", "Thread id (gen_ai.conversation.id)", where="path"), *_MESSAGE_PAGE],
            "responses": {"200": _json("#/components/schemas/ThreadMessages", "A page of messages"),
                          **_NOT_FOUND, **_ERRORS}}},
        "/v1/users/{user_id}/sessions": {"get": {
            "operationId": "getUserSessions", "summary": "The sessions of a user (same filters as /v1/sessions)",
            "parameters": [_param("user_id", "User id (user.id)", where="path"), *_PAGE, *_FILTERS],
            "responses": {"200": _json("#/components/schemas/UserSessions", "The user's sessions"), **_NOT_FOUND,
                          **_ERRORS}}},
        "/v1/traces/{trace_id}": {"get": {
            "operationId": "getTrace", "summary": "The session of a trace, and how many of its spans are stored",
            "parameters": [_param("trace_id", "Trace id, 32 hex digits", where="path")],
            "responses": {"200": _json("#/components/schemas/Trace", "The trace's session (or null) and span count"),
                          "404": _json(_ERR, "No span of the trace is stored"), **_ERRORS}}},
        "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document", "security": [{}],
                                  "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        **_JAEGER_PATHS,
        "/v1/sessions/{session_id}/usage": {"get": {
            "operationId": "getSessionUsage",
            "summary": "Tokens and cost of each span that carries them, counted as the session summary counts them",
            "parameters": [_param("session_id", "Session id", where="path")],
            "responses": {"200": _json("#/components/schemas/SessionUsage", "Per-span usage"), **_NOT_FOUND,
                          **_ERRORS}}},
        "/": {"get": {"operationId": "webPage",
                      "summary": "The web page: a session debugger (list, session, thread)",
                      "security": [{}], "responses": {"200": {"description": "HTML",
                                                              "content": {"text/html": {}}}}}},
        "/web/{name}": {"get": {"operationId": "webPageFile", "summary": "A file of the web page (script, style)",
                                "security": [{}], "parameters": [_param("name", "File name", where="path")],
                                "responses": {"200": {"description": "The file"},
                                              "404": _json(_ERR, "Not a file of the page")}}},
    },
}
