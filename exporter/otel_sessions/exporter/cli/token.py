"""The token a command sends, resolved in one place: ``--token``, else ``--token-file``, else the
env vars in order (the kind's own, ``OTEL_SESSIONS_QUERY_TOKEN`` or ``OTEL_SESSIONS_INGEST_TOKEN``,
then ``OTEL_SESSIONS_TOKEN``, then the file named by ``OTEL_SESSIONS_TOKEN_FILE``).

A token file holds the token alone; surrounding whitespace (a final newline) is stripped. A
file that is missing, unreadable or empty, or ``--token`` together with ``--token-file``, is a
:class:`~otel_sessions.exporter.cli.client.ServiceError` with exit code 2. Messages name the
flag or the file, never the token.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from otel_sessions.exporter.cli.client import ServiceError

__all__ = ["add_token_arguments", "client_token", "QUERY_ENV", "INGEST_ENV"]

QUERY_ENV = "OTEL_SESSIONS_QUERY_TOKEN"
INGEST_ENV = "OTEL_SESSIONS_INGEST_TOKEN"
TOKEN_ENV = "OTEL_SESSIONS_TOKEN"
TOKEN_FILE_ENV = "OTEL_SESSIONS_TOKEN_FILE"


def add_token_arguments(parser: argparse.ArgumentParser, kind_env: str, what: str, note: str = "") -> None:
    """``--token`` and ``--token-file``; ``what`` says which of the service's tokens it is."""
    parser.add_argument("--token", default=None,
                        help=f"{what}, sent as 'Authorization: Bearer' when the service needs one [env {kind_env}, "
                        f"else {TOKEN_ENV}]{note}")
    parser.add_argument("--token-file", default=None, metavar="PATH",
                        help=f"file holding the token (keeps it out of the process list) [env {TOKEN_FILE_ENV}]")


def _read(path: str, named: str) -> str:
    try:
        text = Path(path).expanduser().read_bytes().decode("utf-8").strip()
    except FileNotFoundError:
        raise ServiceError(f"{named}: no such file: {path}", 2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"{named}: cannot read {path}: {exc.__class__.__name__}", 2) from None
    if not text:
        raise ServiceError(f"{named}: {path} is empty", 2)
    return text


def client_token(token: str | None, token_file: str | None, kind_env: str,
                 env: Mapping[str, str] | None = None) -> str | None:
    """The token to send (None: none). ``kind_env``: :data:`QUERY_ENV` or :data:`INGEST_ENV`."""
    env = os.environ if env is None else env
    if token and token_file:
        raise ServiceError("--token and --token-file are both given: give the token one way", 2)
    if token:
        return token
    if token_file:
        return _read(token_file, "--token-file")
    for name in (kind_env, TOKEN_ENV):
        if env.get(name):
            return env[name]
    if env.get(TOKEN_FILE_ENV):
        return _read(env[TOKEN_FILE_ENV], TOKEN_FILE_ENV)
    return None
