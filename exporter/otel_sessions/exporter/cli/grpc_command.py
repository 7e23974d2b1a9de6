"""``otel-sessions grpc METHOD [REQUEST]``: call a SessionService method, grpcurl-style.

The request is JSON (the proto3 JSON mapping); each reply is printed as JSON, OTLP messages
in OTLP/JSON (hex ids), streamed replies one per line. An unreachable service, a gRPC error or
a bad method or request is a :class:`ServiceError` (exit code 2 for an unknown method, a request
that does not parse and INVALID_ARGUMENT, else 1).
"""

from __future__ import annotations

import argparse
import json
import os

from otel_sessions.exporter.cli.client import ServiceError

__all__ = ["add_grpc_command", "cmd_grpc"]


def cmd_grpc(args: argparse.Namespace) -> int:
    """grpcurl-style: ``otel-sessions grpc ListSessions '{"limit": 5}'``."""
    import grpc
    from google.protobuf import json_format

    from otel_sessions.exporter.otlp_json import message_to_dict
    from otel_sessions.v1 import session_service_pb2 as pb

    def to_dict(message) -> dict:
        if message.DESCRIPTOR.full_name.startswith("opentelemetry.") or message.DESCRIPTOR.name == "TailEvent":
            return message_to_dict(message)  # OTLP/JSON: hex ids
        return json_format.MessageToDict(message, preserving_proto_field_name=True)

    service = pb.DESCRIPTOR.services_by_name["SessionService"]
    method = service.methods_by_name.get(args.method)
    if method is None:
        raise ServiceError(f"no method {args.method!r}; SessionService has {', '.join(service.methods_by_name)}", 2)
    from google.protobuf import message_factory

    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    try:
        request = json_format.Parse(args.request or "{}", request_class())
    except json_format.ParseError as exc:
        raise ServiceError(f"request: {exc}", 2) from None
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else None
    path = f"/{service.full_name}/{method.name}"
    with grpc.insecure_channel(args.address) as channel:
        kind = channel.unary_stream if method.server_streaming else channel.unary_unary
        call = kind(path, request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=response_class.FromString)
        try:
            if method.server_streaming:
                for message in call(request, metadata=metadata):
                    print(json.dumps(to_dict(message)), flush=True)
            else:
                message = call(request, metadata=metadata, timeout=30)
                print(json.dumps(to_dict(message), indent=2))
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNAVAILABLE:
                raise ServiceError(f"cannot reach the SessionService at {args.address}: {exc.details()}") from None
            raise ServiceError(f"{code.name}: {exc.details()}",
                               2 if code == grpc.StatusCode.INVALID_ARGUMENT else 1) from None
        except KeyboardInterrupt:
            return 0
    return 0


def add_grpc_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grpc", help="call a SessionService method, grpcurl-style (JSON in, JSON out)")
    p.add_argument("method", help="ListSessions, GetSession, GetSessionSpans, GetSessionLogs, TailSession, GetThread, "
                   "DeleteSession")
    p.add_argument("request", nargs="?", default="{}", help="the request as JSON (default: {})")
    p.add_argument("--address", default=os.environ.get("OTEL_SESSIONS_GRPC") or "127.0.0.1:4317",
                   help="gRPC address of the service [env OTEL_SESSIONS_GRPC; default: %(default)s]")
    from otel_sessions.exporter.cli.token import QUERY_ENV, add_token_arguments

    add_token_arguments(p, QUERY_ENV, "query token")
    p.set_defaults(func=cmd_grpc)
