"""Redis clients for the service: redis-py's asyncio clients, with hiredis packing commands.

redis-py's asyncio connections encode commands in Python, argument by argument; for the
store's script calls (dozens of arguments, binary blobs) that cost about 75 µs per call, more
than the rest of the ingest path together. hiredis (already the reply parser) packs a whole
command in C, as redis-py's synchronous client does when hiredis is installed.
"""

from __future__ import annotations

from typing import Any

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


#: redis-py's connection class (as its URL parsing chooses it) -> the same packing with hiredis
_HIREDIS_CLASS = {Connection: HiredisConnection, SSLConnection: HiredisSSLConnection,
                  UnixDomainSocketConnection: HiredisUnixConnection}


def connect(url: str, cluster: bool = False, **options: Any):
    """An asyncio Redis (or Redis Cluster) client for ``url`` (``redis://``, ``rediss://``,
    ``unix://``: the embedded Redis listens on a unix socket).

    Standalone clients pack commands with hiredis, whatever the scheme: redis-py's URL parsing
    picks the connection class (for ``unix://`` overriding any given), so the pool's class is
    replaced by its hiredis-packing subclass after parsing. redis-py's cluster client chooses its
    own connection class, so on a cluster commands are packed by redis-py.
    """
    options.setdefault("socket_timeout", 5.0)
    options.setdefault("socket_connect_timeout", 2.0)
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(url, **options)
    pool = aioredis.ConnectionPool.from_url(url, **options)
    if hiredis is not None:
        pool.connection_class = _HIREDIS_CLASS.get(pool.connection_class, pool.connection_class)
    return aioredis.Redis.from_pool(pool)
