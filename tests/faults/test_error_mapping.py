"""The gateway's mapping of Redis errors, built the way redis-py builds them from a reply: as
a single command's error and annotated as a pipelined command's (the service's write path
runs pipelines). Every passing condition is "store unavailable", nothing else is."""

from __future__ import annotations

import asyncio

import pytest
from redis import exceptions as redis_errors
from redis._parsers.base import BaseParser
from redis.asyncio.client import Pipeline

from otel_sessions.exporter.errors import StoreUnavailable, classify
from otel_sessions.exporter.store.gateway import RedisGateway, unavailable_condition

PASSING_REPLIES = {
    "OOM": "OOM command not allowed when used memory > 'maxmemory'. script: 0123, on @user_script:65.",
    "LOADING": "LOADING Redis is loading the dataset in memory",
    "BUSY": "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    "MASTERDOWN": "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "TRYAGAIN": "TRYAGAIN Multiple keys request during rehashing of slot",
    "CLUSTERDOWN": "CLUSTERDOWN The cluster is down",
    "READONLY": "READONLY You can't write against a read only replica. script: 0123, on @user_script:1.",
    "NOREPLICAS": "NOREPLICAS Not enough good replicas to write.",
    "MISCONF": "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist "
               "to disk. Commands that may modify the data set are disabled. script: 0123, on @user_script:65.",
}
OTHER_REPLIES = [
    "ERR Error running script (call to f_0123): @user_script:12: user_script:12: bad argument",
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "NOPERM User default has no permissions to run the 'evalsha' command",
    "ERR unknown command 'EVALSHA', with args beginning with: ",
    "EXECABORT Transaction discarded because of previous errors.",
]


def _reply(text: str, pipelined: bool) -> Exception:
    exc = BaseParser.parse_error(text)
    if pipelined:
        Pipeline.annotate_exception(None, exc, 3, ("EVALSHA", "0123", 3, "ots:{s}:sum", "ots:{s}:chunks"))
    return exc


@pytest.mark.parametrize("pipelined", [False, True], ids=["command", "pipeline"])
@pytest.mark.parametrize("code", sorted(PASSING_REPLIES))
def test_every_passing_reply_is_store_unavailable(code, pipelined):
    exc = _reply(PASSING_REPLIES[code], pipelined)
    assert unavailable_condition(exc) == code
    mapped = RedisGateway(client=object())._mapped(exc)
    assert isinstance(mapped, StoreUnavailable) and classify(mapped).http_status == 503
    assert str(mapped) == f"session store unavailable ({code}), retry later"  # no command, no key


@pytest.mark.parametrize("pipelined", [False, True], ids=["command", "pipeline"])
@pytest.mark.parametrize("text", OTHER_REPLIES)
def test_other_replies_stay_errors(text, pipelined):
    exc = _reply(text, pipelined)
    assert unavailable_condition(exc) is None
    assert RedisGateway(client=object())._mapped(exc) is exc  # a bug: answered 500


@pytest.mark.parametrize(("exc", "condition"), [
    (redis_errors.TimeoutError("Timeout reading from 127.0.0.1:6390"), "timeout"),
    (asyncio.TimeoutError(), "timeout"),
    (redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused."), "connection"),
    (ConnectionResetError(104, "Connection reset by peer"), "connectionreset"),
])
def test_client_side_conditions_are_lowercase(exc, condition):
    assert unavailable_condition(exc) == condition
