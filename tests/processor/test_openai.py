"""App side: the official openai client, instrumented by two
off-the-shelf packages, calls a local OpenAI-compatible server inside ``session(...)``; its
LLM spans, and the GenAI events it emits through the Logs API, carry session, thread and user."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from otel_sessions.processor import session
from otel_sessions.processor.attributes import (
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    SESSION_ID,
    SESSION_NAME,
    SESSION_PREVIOUS_ID,
    THREAD_ID,
    USER_ID,
)

from .conftest import Logged, Traced
from .openai_server import COMPLETION_TOKENS, PROMPT_TOKENS, OpenAICompatibleServer


def _otel_v2() -> object:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    return OpenAIInstrumentor()


def _openinference() -> object:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    return OpenAIInstrumentor()


@pytest.fixture(scope="module")
def llm_server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as server:
        yield server


@pytest.mark.parametrize("make_instrumentor", [_otel_v2, _openinference], ids=["openai-v2", "openinference"])
def test_llm_spans_of_an_instrumented_sdk_carry_the_session(
    traced: Traced, llm_server: OpenAICompatibleServer, make_instrumentor: Callable[[], object]
) -> None:
    instrumentor = make_instrumentor()
    instrumentor.instrument(tracer_provider=traced.provider)  # type: ignore[attr-defined]
    try:
        client = openai.OpenAI(base_url=llm_server.base_url, api_key="test-key", max_retries=0)
        with session(user_id="u-42", thread_id="thrd-support", name="Support chat") as active:
            for _ in range(2):
                reply = client.chat.completions.create(
                    model="gpt-test", messages=[{"role": "user", "content": "Hello"}]
                )
                assert reply.usage.prompt_tokens == PROMPT_TOKENS
    finally:
        instrumentor.uninstrument()  # type: ignore[attr-defined]
    llm_spans = [s for s in traced.exporter.get_finished_spans() if any(k in s.attributes for k in INPUT_TOKENS)]
    assert len(llm_spans) == 2
    for span in llm_spans:
        attrs = span.attributes
        assert attrs[SESSION_ID] == active.session_id
        assert attrs[THREAD_ID] == "thrd-support"
        assert attrs[USER_ID] == "u-42"
        assert attrs[SESSION_NAME] == "Support chat"
        assert next(attrs[k] for k in INPUT_TOKENS if k in attrs) == PROMPT_TOKENS
        assert next(attrs[k] for k in OUTPUT_TOKENS if k in attrs) == COMPLETION_TOKENS


def test_genai_events_of_an_instrumented_sdk_carry_the_session(
    traced: Traced, logged: Logged, llm_server: OpenAICompatibleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", "true")  # GenAI events are opt-in
    instrumentor = _otel_v2()
    instrumentor.instrument(tracer_provider=traced.provider, logger_provider=logged.provider)  # type: ignore[attr-defined]
    try:
        client = openai.OpenAI(base_url=llm_server.base_url, api_key="test-key", max_retries=0)
        with session(user_id="u-42", thread_id="thrd-support", previous_id="sess-before") as active:
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hello"}])
    finally:
        instrumentor.uninstrument()  # type: ignore[attr-defined]
    events = [r.log_record for r in logged.exporter.get_finished_logs()]
    assert [e.event_name for e in events] == ["gen_ai.client.inference.operation.details"]
    for event in events:
        attrs = event.attributes
        assert attrs[SESSION_ID] == active.session_id
        assert attrs[THREAD_ID] == "thrd-support"
        assert attrs[USER_ID] == "u-42"
        assert attrs[SESSION_PREVIOUS_ID] == "sess-before"
