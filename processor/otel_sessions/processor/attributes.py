"""Attribute names otel-sessions writes and recognises: the one place they are spelled.

Both halves use this module: the in-app processor (stamping and normalising spans) and the
receiver (normalising spans that arrive without the canonical names, and summing usage).
The precedence lists are described in ``docs/conventions.md``: the first attribute present wins.
"""

from __future__ import annotations

import re

# --- canonical names (OpenTelemetry semantic conventions) ---------------------------------
SESSION_ID = "session.id"
THREAD_ID = "gen_ai.conversation.id"  # never `thread.id`: in OTel that is the runtime thread
USER_ID = "user.id"
SESSION_NAME = "session.name"
SESSION_PREVIOUS_ID = "session.previous_id"
SESSION_METADATA_PREFIX = "session.metadata."
SESSION_ESCALATED = "session.escalated"

#: Span event that marks a session as ended (written by ``end_session()``).
SESSION_END_EVENT = "session.end"
#: Span event recording a state change (key + size-capped value).
STATE_CHANGE_EVENT = "state_change"
#: Attributes of the ``state_change`` event: what changed, and its (size-capped) new value.
STATE_CHANGE_KEY = "state_change.key"
STATE_CHANGE_VALUE = "state_change.value"
#: True on a ``state_change`` event whose value was cut to the size cap.
STATE_CHANGE_TRUNCATED = "state_change.truncated"
#: Span event of a recorded exception (OTel semantic convention).
EXCEPTION_EVENT = "exception"

# --- aliases of other tools, in precedence order (canonical first) ------------------------
SESSION_ID_ALIASES: tuple[str, ...] = (
    SESSION_ID,
    "langfuse.session.id",
    "agentmark.session_id",
    "traceloop.association.properties.session_id",
    "ai.telemetry.metadata.sessionId",
    "mlflow.trace.session",
    THREAD_ID,  # with no session id, the conversation is the session (Langfuse, Phoenix, AgentMark)
)
THREAD_ID_ALIASES: tuple[str, ...] = (
    THREAD_ID,
    "@agentuity/threadId",
    "traceloop.association.properties.conversation_id",
    "langsmith.metadata.thread_id",
)
USER_ID_ALIASES: tuple[str, ...] = (
    USER_ID,
    "langfuse.user.id",
    "agentmark.user_id",
    "traceloop.association.properties.user_id",
    "ai.telemetry.metadata.userId",
    "mlflow.trace.user",
    "enduser.id",
)
SESSION_NAME_ALIASES: tuple[str, ...] = (
    SESSION_NAME,
    "agentmark.session_name",
    "langfuse.trace.name",
)

#: (canonical name, aliases in precedence order) for every id the store groups or indexes by.
ID_ALIASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (SESSION_ID, SESSION_ID_ALIASES),
    (THREAD_ID, THREAD_ID_ALIASES),
    (USER_ID, USER_ID_ALIASES),
    (SESSION_NAME, SESSION_NAME_ALIASES),
)

# --- W3C baggage keys (opt-in) and HTTP headers --------------------------------------------
BAGGAGE_KEYS: tuple[str, ...] = (SESSION_ID, THREAD_ID, USER_ID, SESSION_NAME)
BAGGAGE_LANGFUSE_SESSION_ID = "langfuse_session_id"
BAGGAGE_LANGFUSE_USER_ID = "langfuse_user_id"
HEADER_SESSION_ID = "x-session-id"
HEADER_THREAD_ID = "x-thread-id"
HEADER_USER_ID = "x-user-id"

# --- usage, cost, model, kinds: summed or collected per session ----------------------------
INPUT_TOKENS: tuple[str, ...] = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
OUTPUT_TOKENS: tuple[str, ...] = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
#: Input tokens read from the provider's prompt cache: part of the input tokens (GenAI
#: conventions), priced at the model's cache-read rate.
CACHE_READ_TOKENS: tuple[str, ...] = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens.cached",
    "llm.token_count.prompt_details.cache_read",
)
#: Input tokens written to the prompt cache: part of the input tokens, at the cache-write rate.
CACHE_WRITE_TOKENS: tuple[str, ...] = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
#: Output tokens spent on reasoning: part of the output tokens (reported, not priced apart).
REASONING_TOKENS: tuple[str, ...] = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.output_tokens.reasoning",
    "llm.token_count.completion_details.reasoning",
)
COST_USD: tuple[str, ...] = ("gen_ai.usage.cost", "llm.cost.total")
MODEL: tuple[str, ...] = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
OPERATION_NAME = "gen_ai.operation.name"
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
TRACELOOP_SPAN_KIND = "traceloop.span.kind"
#: Spans of these kinds may carry the usage of the model calls below them (agent frameworks
#: sum their children's usage on the agent or chain span). Their usage counts only for a trace
#: whose model calls carry none: usage is counted at the model-call spans.
AGGREGATE_OPERATIONS: frozenset[str] = frozenset({"invoke_agent", "create_agent", "invoke_workflow"})
AGGREGATE_OPENINFERENCE_KINDS: frozenset[str] = frozenset({"AGENT", "CHAIN"})
AGGREGATE_TRACELOOP_KINDS: frozenset[str] = frozenset({"workflow", "agent", "task"})
AGENT_NAME = "gen_ai.agent.name"
TOOL_NAME = "gen_ai.tool.name"
SERVICE_NAME = "service.name"

# --- id rules ------------------------------------------------------------------------------
SESSION_ID_PREFIX = "sess_"
THREAD_ID_PREFIX = "thrd_"
MAX_ID_LENGTH = 256
MAX_METADATA_VALUE_LENGTH = 1024

_INVALID_ID_CHARS = re.compile(r"[^\x20-\x7e\u00a0-\U0010ffff]")


def is_valid_id(value: object, max_length: int = MAX_ID_LENGTH) -> bool:
    """True when ``value`` is a usable id: a str of 1..max_length printable characters."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and _INVALID_ID_CHARS.search(value) is None
        and not value.isspace()
    )
