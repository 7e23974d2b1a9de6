"""The one door to Redis: the client, every Lua script, cluster routing and the error mapping.

Everything that talks to Redis goes through a :class:`RedisGateway`: the session store, the
index reads of the lookups, the Jaeger index and the live tail. So on one Redis and on a
Redis Cluster alike:

* commands queued by a ``fill(pipe)`` callback run in one pipeline (one round trip) on one
  Redis; on a cluster, where redis-py refuses scripts in pipelines, they run concurrently,
  each routed to its slot's primary (:meth:`RedisGateway.run`);
* a ``NOSCRIPT`` answer (a restarted or new primary) reloads every script once and runs the
  commands again (every caller's commands are idempotent);
* every Redis condition that may pass (connection lost, timeout, out of memory, loading,
  busy script, failover, read-only replica, cluster down) becomes
  :class:`~.errors.StoreUnavailable`, which every transport answers as retryable; the message
  names the condition only, never a command or a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from importlib import resources
from typing import Any

from redis import exceptions as redis_errors

from otel_sessions.exporter.errors import StoreUnavailable

__all__ = ["RedisGateway", "Script", "SCRIPTS", "unavailable_condition"]

log = logging.getLogger(__name__)

#: Commands in flight at once on a Redis Cluster client (see :class:`_CommandList`).
CLUSTER_CONCURRENCY = 32
#: Every Lua script of the store, by name (``lua/<name>.lua``).
SCRIPTS = ("write_session", "update_indexes", "join_traces", "delete_session", "record_operations", "write_logs",
           "rate_limit")

_PASSING_ERRORS = (
    redis_errors.ConnectionError,  # includes redis-py's AuthenticationError-free connection faults
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    redis_errors.MasterDownError,
    redis_errors.OutOfMemoryError,
    redis_errors.SlotNotCoveredError,
    redis_errors.MaxConnectionsError,
    OSError,
    asyncio.TimeoutError,
)
#: Error codes of Redis replies that mean "try again later" (redis-py maps some, not all).
_PASSING_PREFIXES = ("OOM", "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY",
                     "NOREPLICAS", "MISCONF")
#: redis-py's classes for some of those replies; it strips the code from their message.
_PASSING_REPLY_CLASSES = (
    (redis_errors.OutOfMemoryError, "OOM"),
    (redis_errors.BusyLoadingError, "LOADING"),  # a ConnectionError, though Redis answered
    (redis_errors.ReadOnlyError, "READONLY"),
    (redis_errors.TryAgainError, "TRYAGAIN"),
    (redis_errors.MasterDownError, "MASTERDOWN"),  # a ClusterDownError: tested first
    (redis_errors.ClusterDownError, "CLUSTERDOWN"),
)
#: What redis-py puts before the reply's message of a command that failed in a pipeline.
_PIPELINE_PREFIX = " of pipeline caused error: "


def unavailable_condition(exc: BaseException) -> str | None:
    """The passing Redis condition ``exc`` reports (e.g. ``"OOM"``, ``"timeout"``), else None.

    A reply redis-py has a class for is known by its class (its message no longer starts with
    the code); another reply by the code its message starts with. redis-py annotates errors of
    pipelined commands as ``Command # N (...) of pipeline caused error: <message>``, where
    recent versions write the message as the repr of the exception's arguments
    (``('MISCONF ...',)``): the code is read after that prefix, past the repr's quotes."""
    if isinstance(exc, redis_errors.TimeoutError | asyncio.TimeoutError):
        return "timeout"
    for error_class, condition in _PASSING_REPLY_CLASSES:
        if isinstance(exc, error_class):
            return condition
    if isinstance(exc, redis_errors.ResponseError):
        text = str(exc)
        if _PIPELINE_PREFIX in text:
            text = text.rsplit(_PIPELINE_PREFIX, 1)[1].lstrip("([\"'")
        word = text.split(" ", 1)[0].upper()
        return word if word in _PASSING_PREFIXES else None
    if isinstance(exc, _PASSING_ERRORS):
        return type(exc).__name__.removesuffix("Error").lower() or "connection"
    return None


class Script:
    """A Lua script of the store, called by SHA (``lua/<name>.lua``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files(__package__).joinpath("lua", name + ".lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def queue(self, pipe: Any, keys: list, args: list) -> None:
        """Queue one call of this script on ``pipe`` (a pipeline, or a cluster command list)."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)


class RedisGateway:
    """An asyncio Redis or RedisCluster client behind the rules above. One per process."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.scripts = {name: Script(name) for name in SCRIPTS}
        self.is_cluster = hasattr(client, "get_primaries")

    def script(self, name: str) -> Script:
        return self.scripts[name]

    async def load_scripts(self) -> None:
        """Load every script (a cluster client sends ``SCRIPT LOAD`` to every primary)."""
        try:
            for script in self.scripts.values():
                await self.client.script_load(script.source)
        except Exception as exc:
            raise self._mapped(exc) from exc

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except Exception:
            return False

    async def writable(self, probe_key: str) -> bool:
        """True when Redis answers and takes a write now (not refusing for memory, not a
        read-only replica, not loading): a ``SET probe_key PX 10000`` succeeds. ``/readyz``."""
        return await self.write_refusal(probe_key) is None

    async def write_refusal(self, probe_key: str) -> str | None:
        """None when a ``SET probe_key PX 10000`` succeeds now; else why not: the code of the
        error reply Redis refused it with (``"OOM"``, ``"READONLY"``, ``"MISCONF"``...: Redis
        answers but refuses writes; ``"ERR"`` for an error reply of another kind), or a
        lowercase client-side condition (``"timeout"``, ``"connection"``: Redis does not answer;
        ``"error"`` for anything else)."""
        try:
            await self.client.set(probe_key, b"1", px=10_000)
            return None
        except Exception as exc:
            return unavailable_condition(exc) or ("ERR" if isinstance(exc, redis_errors.ResponseError) else "error")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.aclose()

    async def run(self, fill: Callable[[Any], Any]) -> list[Any]:
        """Run the commands ``fill(pipe)`` queues, in order, and return their replies.

        Raises :class:`StoreUnavailable` for every passing condition; a reply that is an
        error of another kind raises it (a bug, answered as 500)."""
        for attempt in (1, 2):
            if self.is_cluster:
                commands = _CommandList()
                fill(commands)
                pending = commands.run(self.client)
            else:
                pipe = self.client.pipeline(transaction=False)
                fill(pipe)
                pending = pipe.execute()
            try:
                return await pending
            except Exception as exc:
                if attempt == 1 and (isinstance(exc, redis_errors.NoScriptError) or "NOSCRIPT" in str(exc)):
                    await self.load_scripts()
                    continue
                raise self._mapped(exc) from exc
        raise AssertionError("unreachable")

    def slot_calls(self, head: list[Any], blocks: list[tuple[list, list]]) -> list[tuple[list, list]]:
        """Script calls (keys, args) from blocks of keys of one slot each: one call per block
        on a cluster (a script's keys must share a slot), else one call with every block;
        ``head`` starts the args of each call."""
        if self.is_cluster:
            return [(keys, head + args) for keys, args in blocks]
        keys, args = [], list(head)
        for block_keys, block_args in blocks:
            keys += block_keys
            args += block_args
        return [(keys, args)] if keys else []

    async def call(self, command: str, *args: Any, **options: Any) -> Any:
        """One command (``await gateway.call("lrange", key, 0, -1)``), errors mapped."""
        try:
            return await getattr(self.client, command)(*args, **options)
        except Exception as exc:
            raise self._mapped(exc) from exc

    def subscription(self) -> Subscription:
        """A pub/sub connection with the same error mapping."""
        return Subscription(self, self.client.pubsub())

    def _mapped(self, exc: BaseException) -> BaseException:
        condition = unavailable_condition(exc)
        if condition is None:
            return exc
        log.warning("redis unavailable (%s)", condition)
        log.debug("redis unavailable (%s): %s", condition, exc)  # names commands and keys: debug only
        return StoreUnavailable(f"session store unavailable ({condition}), retry later")


class Subscription:
    """A Redis pub/sub subscription whose faults raise :class:`StoreUnavailable`."""

    def __init__(self, gateway: RedisGateway, pubsub: Any) -> None:
        self._gateway = gateway
        self._pubsub = pubsub

    async def subscribe(self, channel: str) -> None:
        try:
            await self._pubsub.subscribe(channel)
        except Exception as exc:
            raise self._gateway._mapped(exc) from exc

    async def next_message(self, timeout: float) -> bytes | None:
        """The data of the next published message, or None after ``timeout`` seconds."""
        try:
            while True:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
                if message is None:
                    return None
                if message.get("type") == "message":
                    return message["data"]
        except Exception as exc:
            raise self._gateway._mapped(exc) from exc

    async def next_event(self, timeout: float) -> tuple[bytes, bytes] | None:
        """(channel, data) of the next published message (of any channel subscribed), or None
        after ``timeout`` seconds."""
        try:
            while True:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
                if message is None:
                    return None
                if message.get("type") == "message":
                    channel = message["channel"]
                    return (channel.encode() if isinstance(channel, str) else channel), message["data"]
        except Exception as exc:
            raise self._gateway._mapped(exc) from exc

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # the connection may already be gone
            await self._pubsub.aclose()


class _CommandList:
    """Records pipeline-style calls (``pipe.evalsha(...)``) to run them on a cluster client,
    concurrently but at most :data:`CLUSTER_CONCURRENCY` at once (a read of every trace-map
    epoch is ~150 commands; the client's pool per node is 100 connections)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        def record(*args, **kwargs) -> _CommandList:
            self.calls.append((name, args, kwargs))
            return self

        return record

    async def run(self, client) -> list[Any]:
        limit = asyncio.Semaphore(CLUSTER_CONCURRENCY)

        async def one(name: str, args: tuple, kwargs: dict) -> Any:
            async with limit:
                return await getattr(client, name)(*args, **kwargs)

        return list(await asyncio.gather(*(one(*call) for call in self.calls)))
