from opentelemetry.proto.logs.v1 import logs_pb2 as _logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2 as _trace_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Session(_message.Message):
    __slots__ = ("id", "name", "user_id", "thread_id", "previous_id", "status", "start_time_unix_nano", "end_time_unix_nano", "duration_ms", "last_activity_unix_nano", "trace_count", "span_count", "error_count", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "cost_estimated", "models", "services", "agents", "tools", "metadata", "truncated", "spans_dropped", "traces", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "log_count", "error_log_count", "first_error_log_message", "logs_dropped", "environments", "conversation")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    TRACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SPAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    COST_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    SPANS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    TRACES_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOG_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_LOG_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_ERROR_LOG_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LOGS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    user_id: str
    thread_id: str
    previous_id: str
    status: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float
    last_activity_unix_nano: int
    trace_count: int
    span_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    cost_estimated: bool
    models: _containers.RepeatedScalarFieldContainer[str]
    services: _containers.RepeatedScalarFieldContainer[str]
    agents: _containers.RepeatedScalarFieldContainer[str]
    tools: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    truncated: bool
    spans_dropped: int
    traces: _containers.RepeatedCompositeFieldContainer[TraceSummary]
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    log_count: int
    error_log_count: int
    first_error_log_message: str
    logs_dropped: int
    environments: _containers.RepeatedScalarFieldContainer[str]
    conversation: ConversationFigures
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., user_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., previous_id: _Optional[str] = ..., status: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., duration_ms: _Optional[float] = ..., last_activity_unix_nano: _Optional[int] = ..., trace_count: _Optional[int] = ..., span_count: _Optional[int] = ..., error_count: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., cost_estimated: _Optional[bool] = ..., models: _Optional[_Iterable[str]] = ..., services: _Optional[_Iterable[str]] = ..., agents: _Optional[_Iterable[str]] = ..., tools: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., truncated: _Optional[bool] = ..., spans_dropped: _Optional[int] = ..., traces: _Optional[_Iterable[_Union[TraceSummary, _Mapping]]] = ..., cache_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., log_count: _Optional[int] = ..., error_log_count: _Optional[int] = ..., first_error_log_message: _Optional[str] = ..., logs_dropped: _Optional[int] = ..., environments: _Optional[_Iterable[str]] = ..., conversation: _Optional[_Union[ConversationFigures, _Mapping]] = ...) -> None: ...

class ConversationFigures(_message.Message):
    __slots__ = ("message_count", "user_messages", "assistant_messages", "first_user_message", "last_assistant_message", "model_calls", "response_latency_ms", "time_to_first_token_ms", "tool_calls", "tool_errors", "tool_latency_ms")
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    USER_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    FIRST_USER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_ASSISTANT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_CALLS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_ERRORS_FIELD_NUMBER: _ClassVar[int]
    TOOL_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    message_count: int
    user_messages: int
    assistant_messages: int
    first_user_message: str
    last_assistant_message: str
    model_calls: int
    response_latency_ms: float
    time_to_first_token_ms: float
    tool_calls: int
    tool_errors: int
    tool_latency_ms: float
    def __init__(self, message_count: _Optional[int] = ..., user_messages: _Optional[int] = ..., assistant_messages: _Optional[int] = ..., first_user_message: _Optional[str] = ..., last_assistant_message: _Optional[str] = ..., model_calls: _Optional[int] = ..., response_latency_ms: _Optional[float] = ..., time_to_first_token_ms: _Optional[float] = ..., tool_calls: _Optional[int] = ..., tool_errors: _Optional[int] = ..., tool_latency_ms: _Optional[float] = ...) -> None: ...

class TraceSummary(_message.Message):
    __slots__ = ("trace_id", "root_name", "start_time_unix_nano", "end_time_unix_nano", "duration_ms", "span_count", "error_count", "error", "input_tokens", "output_tokens", "total_tokens", "cost_usd")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_NAME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SPAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    root_name: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float
    span_count: int
    error_count: int
    error: bool
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    def __init__(self, trace_id: _Optional[str] = ..., root_name: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., duration_ms: _Optional[float] = ..., span_count: _Optional[int] = ..., error_count: _Optional[int] = ..., error: _Optional[bool] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("limit", "offset", "user_id", "thread_id", "name", "status", "service", "model", "start_time_unix_nano", "end_time_unix_nano", "metadata", "sort_by", "sort_order", "agent", "tool", "environment", "q")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    SORT_ORDER_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    user_id: str
    thread_id: str
    name: str
    status: _containers.RepeatedScalarFieldContainer[str]
    service: str
    model: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    metadata: _containers.ScalarMap[str, str]
    sort_by: str
    sort_order: str
    agent: str
    tool: str
    environment: str
    q: str
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ..., user_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Iterable[str]] = ..., service: _Optional[str] = ..., model: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., sort_by: _Optional[str] = ..., sort_order: _Optional[str] = ..., agent: _Optional[str] = ..., tool: _Optional[str] = ..., environment: _Optional[str] = ..., q: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "total", "limit", "offset", "partial")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    total: int
    limit: int
    offset: int
    partial: bool
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., total: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., partial: _Optional[bool] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetSessionSpansRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetSessionLogsRequest(_message.Message):
    __slots__ = ("session_id", "min_severity", "start_time_unix_nano", "end_time_unix_nano", "trace_id", "span_id", "contains", "limit", "offset")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    min_severity: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    trace_id: str
    span_id: str
    contains: str
    limit: int
    offset: int
    def __init__(self, session_id: _Optional[str] = ..., min_severity: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., contains: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class TailSessionRequest(_message.Message):
    __slots__ = ("session_id", "include_logs")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_LOGS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    include_logs: bool
    def __init__(self, session_id: _Optional[str] = ..., include_logs: _Optional[bool] = ...) -> None: ...

class TailEvent(_message.Message):
    __slots__ = ("resource_spans", "resource_logs")
    RESOURCE_SPANS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LOGS_FIELD_NUMBER: _ClassVar[int]
    resource_spans: _containers.RepeatedCompositeFieldContainer[_trace_pb2.ResourceSpans]
    resource_logs: _containers.RepeatedCompositeFieldContainer[_logs_pb2.ResourceLogs]
    def __init__(self, resource_spans: _Optional[_Iterable[_Union[_trace_pb2.ResourceSpans, _Mapping]]] = ..., resource_logs: _Optional[_Iterable[_Union[_logs_pb2.ResourceLogs, _Mapping]]] = ...) -> None: ...

class GetThreadRequest(_message.Message):
    __slots__ = ("thread_id", "limit", "offset")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    limit: int
    offset: int
    def __init__(self, thread_id: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class Thread(_message.Message):
    __slots__ = ("id", "sessions", "total")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    total: int
    def __init__(self, id: _Optional[str] = ..., sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class DeleteSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class DeleteSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
