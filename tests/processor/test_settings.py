"""Settings: argument, then env var, then default; impossible values rejected in one place."""

from __future__ import annotations

import logging

import pytest

from otel_sessions.processor.settings import GroupingSettings, env_flag


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_EXPORT_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert GroupingSettings.resolve() == GroupingSettings(5000.0, 2048, 512, 30000.0)


def test_env_then_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")
    monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "1000")
    assert GroupingSettings.resolve() == GroupingSettings(250.0, 100, 10, 1000.0)
    assert GroupingSettings.resolve(max_queue_size=50).max_queue_size == 50


def test_bad_env_value_is_logged_and_defaulted(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "soon")
    with caplog.at_level(logging.WARNING):
        assert GroupingSettings.resolve().schedule_delay_millis == 5000.0
    assert "OTEL_BSP_SCHEDULE_DELAY" in caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schedule_delay_millis": 0},
        {"max_queue_size": -1},
        {"max_export_batch_size": 0},
        {"export_timeout_millis": -5},
        {"max_queue_size": 10, "max_export_batch_size": 11},
    ],
)
def test_impossible_arguments_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GroupingSettings.resolve(**kwargs)


def test_env_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SESSIONS_X", raising=False)
    assert env_flag("OTEL_SESSIONS_X", True) is True
    for raw, expected in (("true", True), ("1", True), ("FALSE", False), ("off", False), ("maybe", True)):
        monkeypatch.setenv("OTEL_SESSIONS_X", raw)
        assert env_flag("OTEL_SESSIONS_X", True) is expected
