"""The Jaeger API's lists in Redis: services, their operations, and synthetic trace ids.

Key layout (``keys.py``): ``P:{jo:N}:services`` and ``P:{jo:N}:ops:SERVICE`` sorted sets
(member -> last seen ms, sharded by service so a service's operations share its shard's
slot), and ``P:{tj:N}:s:TRACE`` strings (a synthetic session trace id -> its session). Every
key gets its TTL in the same call that writes it (``record_operations.lua``, ``SET ... PX``).
"""

from __future__ import annotations

from typing import Any

from otel_sessions.exporter.store.gateway import RedisGateway
from otel_sessions.exporter.store.keys import INDEX_SHARDS, Keys, service_shard

__all__ = ["ServiceIndex"]


class ServiceIndex:
    """Reads and writes of the Jaeger API's lists, through the gateway.

    :param retention_ms: TTL of every key, and how far back a name counts as seen.
    :param max_operations: operations kept per service (the newest win)."""

    def __init__(self, gateway: RedisGateway, keys: Keys, retention_ms: int, max_operations: int = 1000) -> None:
        self.gateway = gateway
        self.keys = keys
        self.retention_ms = retention_ms
        self.max_operations = max_operations
        self._script = gateway.script("record_operations")

    async def record(self, operations: dict[str, set[str]], synthetic: dict[bytes, str], now_ms: int) -> None:
        """Mark ``operations`` (service -> {"kind NUL name"}) seen now, and remember each
        synthetic trace id -> session of ``synthetic``."""
        by_shard: dict[int, list[str]] = {}
        for service in operations:
            by_shard.setdefault(service_shard(service), []).append(service)
        calls = []
        for shard, services in by_shard.items():
            script_keys = [self.keys.services(shard)] + [self.keys.operations(s) for s in services]
            args: list[Any] = [now_ms, self.retention_ms, self.max_operations]
            for service in services:
                members = sorted(operations[service])
                args += [service, len(members), *members]
            calls.append((script_keys, args))

        def fill(pipe) -> None:
            for script_keys, args in calls:
                self._script.queue(pipe, script_keys, args)
            for trace_id, session_id in synthetic.items():
                pipe.set(self.keys.synthetic_trace(trace_id), session_id, px=self.retention_ms)

        await self.gateway.run(fill)

    async def services(self, since_ms: float) -> set[str]:
        """Service names seen since ``since_ms``."""

        def fill(pipe) -> None:
            for shard in range(INDEX_SHARDS):
                pipe.zrangebyscore(self.keys.services(shard), since_ms, "+inf")

        return {member.decode(errors="replace") for reply in await self.gateway.run(fill) for member in reply}

    async def operations(self, service: str, since_ms: float) -> list[tuple[str, str]]:
        """(span kind, operation name) pairs of ``service`` seen since ``since_ms``."""
        members = await self.gateway.call("zrangebyscore", self.keys.operations(service), since_ms, "+inf")
        out = []
        for member in members:
            kind, _, name = member.decode(errors="replace").partition("\0")
            out.append((kind, name))
        return out

    async def synthetic_session(self, trace_id: bytes) -> str | None:
        """The session of a synthetic session trace id, when recorded."""
        value = await self.gateway.call("get", self.keys.synthetic_trace(trace_id))
        return value.decode() if value else None
