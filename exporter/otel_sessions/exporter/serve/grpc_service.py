"""gRPC ``otel_sessions.v1.SessionService`` (proto/otel_sessions/v1/session_service.proto).

The same lookups as the REST API (lookup/queries.py, lookup/tail.py), with the error table's gRPC codes:
``NOT_FOUND`` for unknown sessions and threads, ``INVALID_ARGUMENT`` for bad requests (the
message names the field), ``UNAVAILABLE`` when Redis fails, ``UNAUTHENTICATED`` without a known
token, ``PERMISSION_DENIED`` for a token without the ``read`` scope (``DeleteSession``: ``admin``),
``INTERNAL`` for a bug. Each call sees its token's tenant only: another tenant's ids are
``NOT_FOUND``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

from otel_sessions.exporter import audit_log
from otel_sessions.exporter.auth import Access
from otel_sessions.exporter.errors import BadRequest, NotFound, StoreUnavailable, grpc_abort
from otel_sessions.exporter.lookup.logs import LogQuery, session_page, to_logs_data
from otel_sessions.exporter.lookup.params import MAX_LIMIT, SessionQuery, parse_count
from otel_sessions.exporter.lookup.tail import SessionTail
from otel_sessions.exporter.serve.tenancy import Tenancy, TenantServices
from otel_sessions.exporter.store.summary import SessionSummary, TraceSummary
from otel_sessions.v1 import session_service_pb2 as pb
from otel_sessions.v1 import session_service_pb2_grpc as pb_grpc

__all__ = ["SESSION_SERVICE", "SessionService", "add_session_service", "session_to_proto"]

SESSION_SERVICE = pb.DESCRIPTOR.services_by_name["SessionService"].full_name

_U64_MAX = 2 ** 64 - 1


def _u64(value: float, scale: int = 1) -> int:
    """A figure as a ``uint64`` / ``fixed64`` field takes it: whole, within 0..2**64-1 (a stored
    figure outside that range, or not finite, must not make the answer fail)."""
    if value != value or value <= 0:  # NaN, negative, zero
        return 0
    if value == float("inf"):
        return _U64_MAX
    return min(int(value) * scale, _U64_MAX)


def _trace_to_proto(t: TraceSummary) -> pb.TraceSummary:
    return pb.TraceSummary(
        trace_id=t.trace_id, root_name=t.root_name,
        start_time_unix_nano=_u64(t.start_us, 1000), end_time_unix_nano=_u64(t.end_us, 1000),
        duration_ms=(t.end_us - t.start_us) / 1000, span_count=_u64(t.span_count), error_count=_u64(t.error_count),
        error=t.error_count > 0, input_tokens=_u64(t.input_tokens), output_tokens=_u64(t.output_tokens),
        total_tokens=_u64(t.input_tokens + t.output_tokens), cost_usd=t.cost_usd,
    )


def session_to_proto(s: SessionSummary) -> pb.Session:
    message = pb.Session(
        id=s.id, name=s.name or "", user_id=s.user_id or "", thread_id=s.thread_id or "",
        previous_id=s.previous_id or "", status=s.status,
        start_time_unix_nano=_u64(s.start_us, 1000), end_time_unix_nano=_u64(s.end_us, 1000),
        duration_ms=s.duration_ms, last_activity_unix_nano=_u64(s.last_seen_ms, 1_000_000),
        trace_count=_u64(s.trace_count), span_count=_u64(s.span_count), error_count=_u64(s.error_count),
        input_tokens=_u64(s.input_tokens), output_tokens=_u64(s.output_tokens), total_tokens=_u64(s.total_tokens),
        cost_usd=s.cost_usd, cost_estimated=s.cost_estimated, models=s.models, services=s.services,
        agents=s.agents, tools=s.tools, environments=s.environments, metadata=s.metadata, truncated=s.truncated,
        spans_dropped=_u64(s.spans_dropped), cache_read_tokens=_u64(s.cache_read_tokens),
        cache_write_tokens=_u64(s.cache_write_tokens), reasoning_tokens=_u64(s.reasoning_tokens),
        log_count=_u64(s.log_count), error_log_count=_u64(s.error_log_count),
        first_error_log_message=s.first_error_log_message or "", logs_dropped=_u64(s.logs_dropped),
    )
    if s.traces is not None:
        message.traces.extend(_trace_to_proto(t) for t in s.traces)
    if s.conversation is not None:
        message.conversation.CopyFrom(_figures_to_proto(s.conversation))
    return message


def _figures_to_proto(f) -> pb.ConversationFigures:
    """``lookup/figures.py`` ConversationFigures as the proto message (absent durations unset)."""
    message = pb.ConversationFigures(
        message_count=_u64(f.message_count), user_messages=_u64(f.user_messages),
        assistant_messages=_u64(f.assistant_messages), first_user_message=f.first_user_message or "",
        last_assistant_message=f.last_assistant_message or "", model_calls=_u64(f.model_calls),
        tool_calls=_u64(f.tool_calls), tool_errors=_u64(f.tool_errors))
    for name in ("response_latency_ms", "time_to_first_token_ms", "tool_latency_ms"):
        if getattr(f, name) is not None:
            setattr(message, name, getattr(f, name))
    return message


def _query_from_request(request: pb.ListSessionsRequest) -> SessionQuery:
    return SessionQuery.build(
        limit=request.limit if request.HasField("limit") else None, offset=request.offset,
        user_id=request.user_id, thread_id=request.thread_id, name=request.name,
        statuses=tuple(request.status), service=request.service, model=request.model,
        start_us=request.start_time_unix_nano / 1000 if request.start_time_unix_nano else None,
        end_us=request.end_time_unix_nano / 1000 if request.end_time_unix_nano else None,
        metadata=tuple(sorted(request.metadata.items())), sort_by=request.sort_by, sort_order=request.sort_order,
        agent=request.agent, tool=request.tool, environment=request.environment, q=request.q,
    )


class SessionService(pb_grpc.SessionServiceServicer):
    """The servicer; one per server. Each call is checked against ``access`` (``read`` scope;
    ``DeleteSession``: ``admin``) and answered from its token's tenant's components
    (``tenancy``); every failure is answered from the error table (``errors.py``)."""

    def __init__(self, access: Access, tenancy: Tenancy) -> None:
        self.access = access
        self.tenancy = tenancy

    async def _tenant(self, context: grpc.aio.ServicerContext, method: str, scope: str) -> TenantServices:
        principal = self.access.require_grpc(context.invocation_metadata(), scope)
        return await self.tenancy.get(principal.tenant)

    async def _answer(self, context: grpc.aio.ServicerContext, method: str,
                      call: Callable[[TenantServices], Awaitable], scope: str = "read"):
        """Check the token, run ``call`` with the caller's tenant, and abort with the table's
        code on any failure."""
        try:
            return await call(await self._tenant(context, method, scope))
        except Exception as exc:
            audit_log.record_refusal(exc, route=f"SessionService/{method}", client=audit_log.grpc_peer(context))
            await grpc_abort(context, exc, f"SessionService/{method}")

    @staticmethod
    def _required(value: str, field: str) -> str:
        if not value:
            raise BadRequest("required", field)
        return value

    async def ListSessions(self, request, context):
        async def call(tenant: TenantServices):
            result = await tenant.queries.list_sessions(_query_from_request(request))
            return pb.ListSessionsResponse(sessions=[session_to_proto(s) for s in result.sessions],
                                           total=result.total, limit=result.limit, offset=result.offset,
                                           partial=result.partial)

        return await self._answer(context, "ListSessions", call)

    async def GetSession(self, request, context):
        async def call(tenant: TenantServices):
            session_id = self._required(request.session_id, "session_id")
            summary = await tenant.store.get_session(session_id, with_traces=True)
            if summary is None:
                raise NotFound(f"no session {session_id!r}")
            await tenant.queries.figures.fill([summary])
            return session_to_proto(summary)

        return await self._answer(context, "GetSession", call)

    async def GetSessionSpans(self, request, context):
        async def call(tenant: TenantServices):
            session_id = self._required(request.session_id, "session_id")
            data = await tenant.store.get_spans(session_id)
            if data is None:
                raise NotFound(f"no session {session_id!r}")
            return data

        return await self._answer(context, "GetSessionSpans", call)

    async def GetSessionLogs(self, request, context):
        async def call(tenant: TenantServices):
            session_id = self._required(request.session_id, "session_id")
            query = LogQuery.build(
                min_severity=request.min_severity, start_ns=request.start_time_unix_nano or None,
                end_ns=request.end_time_unix_nano or None, trace_id=request.trace_id, span_id=request.span_id,
                contains=request.contains, limit=request.limit if request.HasField("limit") else None,
                offset=request.offset)
            page = await session_page(tenant.store, session_id, query)
            if page is None:
                raise NotFound(f"no session {session_id!r}")
            return to_logs_data(page.entries)

        return await self._answer(context, "GetSessionLogs", call)

    async def TailSession(self, request, context):
        async def start(tenant: TenantServices) -> SessionTail:
            session_id = self._required(request.session_id, "session_id")
            if await tenant.store.get_session(session_id) is None:
                raise NotFound(f"no session {session_id!r}")
            return await SessionTail(tenant.store, session_id, logs=request.include_logs).start()

        following = await self._answer(context, "TailSession", start)
        try:
            # Headers go out once subscribed: a client that has them knows no later span is missed.
            await context.send_initial_metadata((("x-otel-sessions-tail", "live"),))
            async for data in following:
                if isinstance(data, LogsData):
                    await context.write(pb.TailEvent(resource_logs=data.resource_logs))
                elif data is not None:  # TailEvent is TracesData on the wire (field 1)
                    await context.write(pb.TailEvent.FromString(data.SerializeToString()))
        except StoreUnavailable as exc:
            await grpc_abort(context, exc, "SessionService/TailSession")
        finally:
            await following.close()

    async def GetThread(self, request, context):
        async def call(tenant: TenantServices):
            thread_id = self._required(request.thread_id, "thread_id")
            limit = parse_count("limit", request.limit if request.HasField("limit") else None, MAX_LIMIT, MAX_LIMIT)
            result = await tenant.queries.thread(thread_id, limit=limit, offset=request.offset, conversation=True)
            if result is None:
                raise NotFound(f"no thread {thread_id!r}")
            return pb.Thread(id=thread_id, sessions=[session_to_proto(s) for s in result.sessions],
                             total=result.total)

        return await self._answer(context, "GetThread", call)

    async def DeleteSession(self, request, context):
        async def call(tenant: TenantServices):
            session_id = self._required(request.session_id, "session_id")
            if not await tenant.store.delete_session(session_id):
                raise NotFound(f"no session {session_id!r}")
            audit_log.record("deleted", route="SessionService/DeleteSession", client=audit_log.grpc_peer(context),
                             tenant=tenant.name, target=session_id)
            return pb.DeleteSessionResponse()

        return await self._answer(context, "DeleteSession", call, scope="admin")


def add_session_service(server: grpc.aio.Server, access: Access, tenancy: Tenancy) -> SessionService:
    servicer = SessionService(access, tenancy)
    pb_grpc.add_SessionServiceServicer_to_server(servicer, server)
    return servicer
