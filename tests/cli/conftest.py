"""Fixtures of the CLI unit tests: a fake service and a port that refuses connections."""

from __future__ import annotations

import socket
import time

import pytest

from tests.cli.fake_service import FakeService


@pytest.fixture()
def fake():
    with FakeService() as service:
        yield service


@pytest.fixture()
def refused_url():
    """A port that refuses connections: bound, never listening (so nothing else can take it meanwhile)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture()
def utc(monkeypatch):
    """Local time is UTC for the test (span lines print local times)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
