"""Cached input and reasoning tokens, and which model names get a price estimate
(``docs/conventions.md``, usage and pricing), through the service: REST and gRPC."""

from __future__ import annotations

import json
import math

import grpc
import pytest

from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc
from tests.field.helpers import send, session, tracer
from tests.support import RunningService

#: gpt-4o: 145 uncached input tokens at 2.50, 1,408 cached at 1.25, 28 output at 10.00 USD per 1M
CACHED_CALL_USD = 0.0024025


def _send_call(service, session_id: str, attributes: dict, name: str = "chat", transport: str = "grpc") -> None:
    t, memory = tracer()
    with t.start_as_current_span(name, attributes={"session.id": session_id, **attributes}):
        pass
    send(service, memory.get_finished_spans(), transport)


def _grpc_session(service, session_id: str) -> pb.Session:
    with grpc.insecure_channel(service.grpc_endpoint) as channel:
        return pb_grpc.SessionServiceStub(channel).GetSession(pb.GetSessionRequest(session_id=session_id), timeout=10)


GENAI_CACHED = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1553, "gen_ai.usage.cache_read.input_tokens": 1408,
                "gen_ai.usage.output_tokens": 28, "gen_ai.usage.reasoning.output_tokens": 12}
OPENINFERENCE_CACHED = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o",
                        "llm.token_count.prompt": 1553, "llm.token_count.prompt_details.cache_read": 1408,
                        "llm.token_count.completion": 28, "llm.token_count.completion_details.reasoning": 12}


@pytest.mark.parametrize("attributes", [GENAI_CACHED, OPENINFERENCE_CACHED], ids=["genai", "openinference"])
def test_cached_input_tokens_are_priced_at_the_cache_read_rate(service, session_id, attributes):
    _send_call(service, session_id, attributes)
    detail = session(service, session_id)
    assert math.isclose(detail["cost_usd"], CACHED_CALL_USD, rel_tol=1e-9), detail["cost_usd"]
    assert detail["cost_estimated"] is True
    assert (detail["input_tokens"], detail["output_tokens"]) == (1553, 28)
    assert (detail["cache_read_tokens"], detail["cache_write_tokens"], detail["reasoning_tokens"]) == (1408, 0, 12)
    assert math.isclose(detail["traces"][0]["cost_usd"], CACHED_CALL_USD, rel_tol=1e-9)

    over_grpc = _grpc_session(service, session_id)
    assert math.isclose(over_grpc.cost_usd, CACHED_CALL_USD, rel_tol=1e-9)
    assert (over_grpc.input_tokens, over_grpc.output_tokens) == (1553, 28)
    assert (over_grpc.cache_read_tokens, over_grpc.cache_write_tokens, over_grpc.reasoning_tokens) == (1408, 0, 12)
    assert math.isclose(over_grpc.traces[0].cost_usd, CACHED_CALL_USD, rel_tol=1e-9)

    _send_call(service, session_id, attributes)  # another call: the cache figures add up
    detail = session(service, session_id)
    assert (detail["cache_read_tokens"], detail["reasoning_tokens"]) == (2816, 24)
    assert math.isclose(detail["cost_usd"], 2 * CACHED_CALL_USD, rel_tol=1e-9)


def test_cache_writes_at_the_cache_write_rate(service, session_id):
    _send_call(service, session_id, {"gen_ai.request.model": "claude-3-5-sonnet-20241022",
                                     "gen_ai.usage.input_tokens": 1000,
                                     "gen_ai.usage.cache_creation.input_tokens": 800,
                                     "gen_ai.usage.output_tokens": 50})
    detail = session(service, session_id)
    # 200 uncached at 3.00, 800 written to the cache at 3.75, 50 output at 15.00 USD per 1M
    assert math.isclose(detail["cost_usd"], (200 * 3.00 + 800 * 3.75 + 50 * 15.00) / 1e6, rel_tol=1e-9)
    assert (detail["cache_read_tokens"], detail["cache_write_tokens"]) == (0, 800)
    assert _grpc_session(service, session_id).cache_write_tokens == 800


@pytest.mark.parametrize("model", ["gpt-4o-mini-foo", "gemini-1.5-flash-8b-lite"])
def test_an_unlisted_sibling_gets_no_estimate(service, session_id, model):
    _send_call(service, session_id, {"gen_ai.request.model": model, "gen_ai.usage.input_tokens": 1000,
                                     "gen_ai.usage.output_tokens": 100})
    detail = session(service, session_id)
    assert detail["cost_usd"] == 0 and detail["cost_estimated"] is False
    assert detail["models"] == [model] and detail["input_tokens"] == 1000


def test_a_dated_snapshot_gets_the_prices_of_its_model(service, session_id):
    """gpt-4o's prices, its cache-read price included."""
    _send_call(service, session_id, {**GENAI_CACHED, "gen_ai.response.model": "gpt-4o-2024-08-06"})
    detail = session(service, session_id)
    assert math.isclose(detail["cost_usd"], CACHED_CALL_USD, rel_tol=1e-9), detail["cost_usd"]
    assert detail["cost_estimated"] is True and detail["models"] == ["gpt-4o-2024-08-06"]


def test_prices_file_keys_match_model_names_whatever_their_case(redis_url, tmp_path, session_id):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"My-Finetune": {"input": 3, "output": 12}}))
    with RunningService(redis_url, prices=str(prices)) as service:
        _send_call(service, session_id, {"gen_ai.request.model": "my-finetune", "gen_ai.usage.input_tokens": 1000,
                                         "gen_ai.usage.output_tokens": 100}, transport="http")
        detail = session(service, session_id)
    assert math.isclose(detail["cost_usd"], (1000 * 3 + 100 * 12) / 1e6, rel_tol=1e-9)
    assert detail["cost_estimated"] is True
