"""The price table: cache-aware estimates, exact and dated-snapshot model names, the --prices file."""

from __future__ import annotations

import json
import math

import pytest

from otel_sessions.exporter.ingest.pricing import DEFAULT_PRICES, ModelPrice, PriceTable

TABLE = PriceTable.load(None)


def close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=0)


def test_cached_input_at_the_cache_read_price():
    # 1,553 input tokens of which 1,408 read from the cache, 28 output:
    # 145 x 2.50 + 1,408 x 1.25 + 28 x 10.00 per million
    assert close(TABLE.estimate("gpt-4o", 1_553, 28, cache_read_tokens=1_408), 0.0024025)
    assert close(TABLE.estimate("gpt-4o", 1_553, 28, 1_408), 0.0024025)


def test_cache_writes_at_the_cache_write_price():
    # Anthropic: reads at 0.1x input, writes at 1.25x: 5,000 x 3 + 2,000 x 0.30 + 3,000 x 3.75 + 500 x 15
    cost = TABLE.estimate("claude-3-5-sonnet-20241022", 10_000, 500, cache_read_tokens=2_000, cache_write_tokens=3_000)
    assert close(cost, 0.03435)


def test_without_cache_tokens_as_before():
    assert close(TABLE.estimate("gpt-4o", 1_000_000, 0), 2.50)
    assert close(TABLE.estimate("gpt-4o", 0, 1_000_000), 10.00)
    assert close(TABLE.estimate("claude-3-haiku", 1_000, 1_000), (1_000 * 0.25 + 1_000 * 1.25) / 1e6)


def test_absent_cache_prices_are_the_input_price():
    assert DEFAULT_PRICES["gpt-4-turbo"].cache_read is None and DEFAULT_PRICES["gpt-4o"].cache_write is None
    assert close(TABLE.estimate("gpt-4-turbo", 2_000, 0, cache_read_tokens=1_500), 2_000 * 10.00 / 1e6)
    assert close(TABLE.estimate("gpt-4o", 1_000, 0, cache_write_tokens=400), 1_000 * 2.50 / 1e6)


def test_uncached_input_is_clamped_at_zero():
    # an instrumentation that counts input without the cached part
    assert close(TABLE.estimate("gpt-4o", 100, 0, cache_read_tokens=300), 300 * 1.25 / 1e6)


def test_built_in_cache_prices():
    assert DEFAULT_PRICES["gpt-4o"] == ModelPrice(2.50, 10.00, cache_read=1.25)
    assert DEFAULT_PRICES["claude-sonnet-4"] == ModelPrice(3.00, 15.00, 0.30, 3.75)
    assert DEFAULT_PRICES["claude-opus-4"] == ModelPrice(15.00, 75.00, 1.50, 18.75)
    assert DEFAULT_PRICES["gemini-2.0-flash"].cache_read == 0.025
    for name, price in DEFAULT_PRICES.items():
        assert name == name.lower()
        if price.cache_read is not None:
            assert price.cache_read < price.input, name
        if price.cache_write is not None:
            assert price.cache_write > price.input, name


@pytest.mark.parametrize(("model", "listed"), [
    ("gpt-4o", "gpt-4o"),
    ("GPT-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
    ("Claude-Sonnet-4-20250514", "claude-sonnet-4"),
    ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
    ("mistral-large-latest", "mistral-large"),
    ("o3-mini-2025-01-31", "o3-mini"),
    ("openai/gpt-4o", "gpt-4o"),
    ("models/gemini-1.5-pro", "gemini-1.5-pro"),
    ("openrouter/openai/gpt-4o-2024-08-06", "gpt-4o"),
])
def test_exact_names_and_dated_snapshots(model, listed):
    assert TABLE.price(model) == DEFAULT_PRICES[listed]


@pytest.mark.parametrize("model", [
    "gemini-1.5-flash-8b", "gemini-2.0-flash-lite", "gemini-2.5-flash-lite", "o1-pro", "o1-preview",
    "gpt-4o-audio-preview", "gpt-4o-realtime-preview-2024-12-17", "gpt-4.1-mini-fast",
    "claude-3-5-sonnet-v2@20241022", "gpt-4-turbo-preview", "gpt-4",
    # version suffixes other than the documented dates
    "gemini-1.5-pro-002", "gemini-2.0-flash-001", "mistral-large-2411", "gpt-4o-2024-08",
    # not calendar dates
    "gpt-4o-2024-13-01", "gpt-4o-20241332", "gpt-4o-1399", "gpt-4o-20241022x",
    "unknown-model", "", "gpt-4o/", "anthropic.claude-3-5-sonnet-20240620-v1:0",
])
def test_other_names_get_no_estimate(model):
    assert TABLE.price(model) is None
    assert TABLE.estimate(model, 1_000, 1_000) is None


def test_a_suffixed_sibling_of_a_listed_model_is_not_that_model():
    table = PriceTable({"gpt-4o": (2.50, 10.00)})
    assert table.estimate("gpt-4o-mini", 1_000_000, 0) is None
    assert table.estimate("gpt-4o-mini-2024-07-18", 1_000_000, 0) is None
    assert close(table.estimate("gpt-4o-2024-11-20", 1_000_000, 0), 2.50)


def test_tables_from_tuples():
    table = PriceTable({"Model-A": (1, 2), "model-b": (1, 2, 0.5), "model-c": (1, 2, None, 4)})
    assert table.price("model-a") == ModelPrice(1, 2) and table.price("MODEL-B") == ModelPrice(1, 2, 0.5)
    assert close(table.estimate("model-c", 10, 0, cache_write_tokens=10), 40 / 1e6)
    assert table.price("model-a")[:2] == (1, 2)  # still a tuple for callers that index it


def write(tmp_path, data) -> object:
    path = tmp_path / "prices.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_prices_file_with_cache_prices_and_capitals(tmp_path):
    path = write(tmp_path, {"My-FineTune": {"input": 3, "output": 12, "cache_read": 0.3, "cache_write": 3.75},
                            "GPT-4o": {"input": 1, "output": 2}})
    table = PriceTable.load(path)
    assert table.price("my-finetune") == ModelPrice(3.0, 12.0, 0.3, 3.75)
    assert table.price("My-FineTune") == table.price("MY-FINETUNE-2025-01-01") == ModelPrice(3.0, 12.0, 0.3, 3.75)
    assert close(table.estimate("my-finetune", 1_000, 100, 200, 300), (500 * 3 + 200 * 0.3 + 300 * 3.75 + 100 * 12) / 1e6)
    assert table.price("gpt-4o") == ModelPrice(1.0, 2.0)  # overrides the built-in entry, capitals or not
    assert table.price("gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]  # the rest stays


def test_prices_file_keys_with_a_provider_prefix_match_whole(tmp_path):
    table = PriceTable.load(write(tmp_path, {"Azure/My-Deployment": {"input": 1, "output": 1}}))
    assert table.price("azure/my-deployment") == ModelPrice(1.0, 1.0)
    assert table.price("other/my-deployment") is None


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "not a JSON price file"),
    ("[1, 2]", "expected an object"),
    ({"m": [3, 12]}, "'m' must be an object"),
    ({"m": {"input": 3}}, "needs numeric 'input' and 'output'"),
    ({"m": {"input": "3", "output": 12}}, "'input' must be a non-negative number"),
    ({"m": {"input": 3, "output": -1}}, "'output' must be a non-negative number"),
    ({"m": {"input": 3, "output": True}}, "'output' must be a non-negative number"),
    ('{"m": {"input": NaN, "output": 1}}', "'input' must be a non-negative number"),
    ({"m": {"input": 3, "output": 12, "cache_read": "cheap"}}, "'cache_read' must be"),
    ({"m": {"input": 3, "output": 12, "cache-read": 0.3}}, "unknown price field(s) 'cache-read'"),
    ({"M": {"input": 3, "output": 12}, "m": {"input": 3, "output": 12}}, "name the same model"),
])
def test_bad_prices_files_name_the_file_and_the_problem(tmp_path, content, problem):
    path = write(tmp_path, content)
    with pytest.raises(ValueError) as caught:
        PriceTable.load(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_unreadable_prices_file(tmp_path):
    path = tmp_path / "missing.json"
    with pytest.raises(ValueError, match="cannot read"):
        PriceTable.load(path)


def test_null_cache_prices_in_a_file_mean_absent(tmp_path):
    table = PriceTable.load(write(tmp_path, {"m": {"input": 2, "output": 4, "cache_read": None}}))
    assert table.price("m") == ModelPrice(2.0, 4.0)
