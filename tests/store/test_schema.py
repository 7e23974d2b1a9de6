"""Python and Lua speak one storage vocabulary: every summary field a script reads or writes is
named in ``store/schema.py``, and the index script's ZADD flags follow its sort indexes."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from otel_sessions.exporter.store.schema import (
    COUNTERS,
    LABEL_KINDS,
    METADATA_PREFIX,
    SORT_INDEXES,
    SUMMARY_FIELDS,
)

LUA = resources.files("otel_sessions.exporter.store").joinpath("lua")
JOIN_OPS = {"c", "p"}  # join_traces.lua's claim and park operations, not fields


def quoted_words(script: str) -> set[str]:
    return set(re.findall(r"'([a-z_]+)'", LUA.joinpath(script).read_text()))


@pytest.mark.parametrize("script", ["write_session.lua", "delete_session.lua", "write_logs.lua"])
def test_every_field_a_session_script_names_is_in_the_schema(script):
    unknown = quoted_words(script) - set(SUMMARY_FIELDS) - JOIN_OPS
    assert not unknown, f"{script} names fields schema.py does not: {sorted(unknown)}"


def test_counters_and_prefixes_are_summary_fields_or_distinct_prefixes():
    assert set(COUNTERS) <= set(SUMMARY_FIELDS)
    prefixes = [*LABEL_KINDS.values(), METADATA_PREFIX]
    assert len(set(prefixes)) == len(prefixes)
    # a label or metadata field can never be taken for a summary field: those have no colon
    assert all(":" not in field for field in SUMMARY_FIELDS)
    assert all(prefix.endswith(":") for prefix in prefixes)


def test_the_index_script_keeps_each_score_monotonic_as_the_schema_says():
    source = LUA.joinpath("update_indexes.lua").read_text()
    flags = re.search(r"local FLAGS = \{([^}]*)\}", source).group(1)
    in_script = re.findall(r"'(GT|LT)'", flags)
    # the `seen` index first (last write: only grows), then every sort index in schema order
    assert in_script == ["GT", *SORT_INDEXES.values()]
