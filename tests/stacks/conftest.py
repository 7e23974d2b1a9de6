"""Fixtures of the existing-stacks tests: real OTLP receivers downstream of the service."""

from __future__ import annotations

import pytest

from tests.stacks.downstream import GrpcReceiver, HttpReceiver


@pytest.fixture()
def grpc_downstream():
    receiver = GrpcReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture()
def http_downstream():
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()
