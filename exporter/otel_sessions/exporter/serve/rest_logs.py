"""The log routes of the REST API: ``GET /v1/sessions/{id}/logs`` and ``GET /v1/threads/{id}/logs``.

Query parameters (``lookup/logs.py``): ``min_severity`` (a name such as ``WARN`` or a
severity_number 1..24), ``start_time`` / ``end_time`` (RFC 3339 or unix ms), ``trace_id``,
``span_id``, ``contains`` (case-insensitive text of the message), ``limit`` (default 1000, at
most 10000), ``offset``, and ``format``: ``json`` (default: ``{"id", "data", "total", "limit",
"offset"}`` with one JSON object per record, in time order), ``otlp-json`` or ``otlp-proto``
(the page as one OTLP ``LogsData``). Errors as in ``rest.py``.
"""

from __future__ import annotations

from aiohttp import web

from otel_sessions.exporter.errors import NotFound
from otel_sessions.exporter.lookup.logs import LogPage, LogQuery, session_page, thread_page, to_logs_data
from otel_sessions.exporter.lookup.params import QueryError
from otel_sessions.exporter.otlp_json import message_to_json

__all__ = ["session_logs", "thread_logs", "LOG_FORMATS"]

LOG_FORMATS = ("json", "otlp-json", "otlp-proto")


def _format(request: web.Request) -> str:
    fmt = request.query.get("format", "json")
    if fmt not in LOG_FORMATS:
        raise QueryError("format", f"{fmt[:32]!r} is not json, otlp-json or otlp-proto")
    return fmt


def _answer(fmt: str, id_: str, page: LogPage) -> web.Response:
    if fmt == "json":
        return web.json_response({"id": id_, **page.to_json()})
    data = to_logs_data(page.entries)
    if fmt == "otlp-proto":
        return web.Response(body=data.SerializeToString(), content_type="application/x-protobuf")
    return web.Response(body=message_to_json(data), content_type="application/json")


async def session_logs(request: web.Request) -> web.Response:
    from otel_sessions.exporter.serve.rest import TENANT

    session_id = request.match_info["session_id"]
    fmt = _format(request)
    page = await session_page(request[TENANT].store, session_id, LogQuery.from_params(request.query))
    if page is None:
        raise NotFound(f"no session {session_id!r}")
    return _answer(fmt, session_id, page)


async def thread_logs(request: web.Request) -> web.Response:
    from otel_sessions.exporter.serve.rest import TENANT

    thread_id = request.match_info["thread_id"]
    fmt = _format(request)
    page = await thread_page(request[TENANT].store, request[TENANT].queries, thread_id, LogQuery.from_params(request.query))
    if page is None:
        raise NotFound(f"no thread {thread_id!r}")
    return _answer(fmt, thread_id, page)
