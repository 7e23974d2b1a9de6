"""history.py: a re-sent history is parsed only past the part an earlier call sent, and gives
what a whole parse gives."""

from __future__ import annotations

import json

from otel_sessions.exporter.lookup.history import HistoryCache, kind_counts
from otel_sessions.exporter.lookup.messages import messages_from_value
from tests.conversation.builders import genai_message


def _history(n: int) -> list[dict]:
    out = [genai_message("system", "S")]
    for i in range(n):
        out += [genai_message("user", f"q{i}"), genai_message("assistant", f"a{i}")]
    return out


def _plain(messages) -> list[tuple]:
    return [m.key() for m in messages]


def test_an_extended_history_reuses_the_earlier_messages():
    cache = HistoryCache()
    first = cache.parse("k", json.dumps(_history(2)), "user")
    assert first.resent == 0 and first.counts is None
    second = cache.parse("k", json.dumps(_history(4)), "user")
    assert _plain(second) == _plain(messages_from_value(_history(4), "user"))
    assert second.resent == 5 and all(a is b for a, b in zip(first, second))  # the same objects
    assert second.counts == kind_counts(first)  # system messages not counted
    again = cache.parse("k", json.dumps(_history(4)), "user")
    assert again.resent == len(again) == 9 and again.counts == kind_counts(second)


def test_histories_that_do_not_extend_are_parsed_whole():
    cache = HistoryCache()
    cache.parse("k", json.dumps(_history(2)), "user")
    compact = cache.parse("k", json.dumps(_history(3), separators=(",", ":")), "user")  # another serialization
    assert compact.resent == 0 and len(compact) == 7
    other_agent = cache.parse("k", json.dumps([genai_message("user", "elsewhere")]), "user")
    assert other_agent.resent == 0
    back = cache.parse("k", json.dumps(_history(3)), "user")  # extends the first one, 2 entries back
    assert back.resent == 5
    assert cache.parse("other key", json.dumps(_history(3)), "user").resent == 0


def test_what_is_not_a_list_of_messages_is_left_to_the_caller():
    cache = HistoryCache()
    assert cache.parse("k", '{"messages": []}', "user") is None
    assert cache.parse("k", "[1, 2]", "user") is None
    assert cache.parse("k", "[", "user") is None
    cache.parse("k", json.dumps(_history(1)), "user")
    assert cache.parse("k", json.dumps(_history(1))[:-1] + ', 7]', "user") is None  # a tail that is not messages
    assert cache.parse("k", json.dumps(_history(1))[:-1] + ', {"role": "user", "parts": [', "user") is None
