"""Redis clients for the service: redis-py's asyncio clients, with hiredis packing commands.

redis-py's asyncio connections encode commands in Python, argument by argument; for the
store's script calls (dozens of arguments, binary blobs) that cost about 75 µs per call, more
than the rest of the ingest path together. hiredis (already the reply parser) packs a whole
command in C, as redis-py's synchronous client does when hiredis is installed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency; stay correct without it
    hiredis = None

__all__ = ["connect"]


class _HiredisPacking:
    """Mixin for redis-py asyncio connections: pack commands with ``hiredis.pack_command``."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str):
            args = tuple(first.encode().split()) + args[1:]
        elif b" " in first:
            args = tuple(first.split()) + args[1:]
        return [hiredis.pack_command(args)]

    def pack_commands(self, commands) -> list[bytes]:
        return [b"".join([self.pack_command(*command)[0] for command in commands])]


class HiredisConnection(_HiredisPacking, Connection):
    pass


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    pass


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


_BY_SCHEME = {"redis": HiredisConnection, "rediss": HiredisSSLConnection, "unix": HiredisUnixConnection}


def connect(url: str, cluster: bool = False, **options: Any):
    """An asyncio Redis (or Redis Cluster) client for ``url``.

    Standalone clients pack commands with hiredis; redis-py's cluster client chooses its own
    connection class, so on a cluster commands are packed by redis-py.
    """
    options.setdefault("socket_timeout", 5.0)
    options.setdefault("socket_connect_timeout", 2.0)
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(url, **options)
    connection_class = _BY_SCHEME.get(urlparse(url).scheme) if hiredis is not None else None
    if connection_class is not None:
        options.setdefault("connection_class", connection_class)
    return aioredis.Redis.from_url(url, **options)
