"""The commands' token: ``--token``, ``--token-file``, ``OTEL_SESSIONS_*`` env vars, against a real
service started with tokens (the lookups, ``grpc`` and ``demo``)."""

from __future__ import annotations

import pytest

from otel_sessions.exporter.cli.client import ServiceError
from otel_sessions.exporter.cli.token import INGEST_ENV, QUERY_ENV, client_token
from tests.support import RunningService, cli

QUERY = "q-7d3e1a"
INGEST = "i-5b9c2f"
NO_TOKEN_ENV = {"OTEL_SESSIONS_TOKEN": "", "OTEL_SESSIONS_TOKEN_FILE": "", "OTEL_SESSIONS_INGEST_TOKEN": "",
                "OTEL_EXPORTER_OTLP_HEADERS": "", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": ""}


def test_client_token_order(tmp_path):
    (tmp_path / "t").write_text("from-file\n")
    file = str(tmp_path / "t")
    assert client_token("flag", None, QUERY_ENV, env={"OTEL_SESSIONS_TOKEN": "x"}) == "flag"
    assert client_token(None, file, QUERY_ENV, env={QUERY_ENV: "x"}) == "from-file"
    env = {QUERY_ENV: "query", INGEST_ENV: "ingest", "OTEL_SESSIONS_TOKEN": "any", "OTEL_SESSIONS_TOKEN_FILE": file}
    assert client_token(None, None, QUERY_ENV, env=env) == "query"
    assert client_token(None, None, INGEST_ENV, env=env) == "ingest"
    assert client_token(None, None, QUERY_ENV, env={**env, QUERY_ENV: ""}) == "any"
    assert client_token(None, None, QUERY_ENV, env={"OTEL_SESSIONS_TOKEN_FILE": file}) == "from-file"
    assert client_token(None, None, QUERY_ENV, env={}) is None
    for token, token_file, env, message in (
            ("a", file, {}, "--token and --token-file are both given"),
            (None, str(tmp_path / "absent"), {}, "--token-file: no such file"),
            (None, None, {"OTEL_SESSIONS_TOKEN_FILE": str(tmp_path)}, "OTEL_SESSIONS_TOKEN_FILE: cannot read")):
        with pytest.raises(ServiceError, match=message) as error:
            client_token(token, token_file, QUERY_ENV, env=env)
        assert error.value.exit_code == 2
    (tmp_path / "empty").write_text(" \n")
    with pytest.raises(ServiceError, match="is empty"):
        client_token(None, str(tmp_path / "empty"), QUERY_ENV, env={})


@pytest.fixture()
def guarded(redis_url):
    with RunningService(redis_url, query_token=QUERY, ingest_token=INGEST) as running:
        yield running


def test_commands_read_the_token_from_a_file_or_the_env(guarded, tmp_path):
    (tmp_path / "query.token").write_text(QUERY + "\n")
    (tmp_path / "ingest.token").write_text(INGEST + "\n")
    server = ["--server", guarded.http_url]
    # demo sends spans with the ingest token from its file
    out = cli("demo", "--seed", "11", *server, "--token-file", str(tmp_path / "ingest.token"), env=NO_TOKEN_ENV).stdout
    assert out.startswith("Sent 3 sessions")
    # lookups: without a token 401 (exit 1), with the file, with the generic env vars
    result = cli("sessions", "list", *server, env=NO_TOKEN_ENV, expect=1)
    assert "HTTP 401" in result.stderr
    assert '"total": 3' in cli("sessions", "list", *server, "--json", "--token-file", str(tmp_path / "query.token"),
                               env=NO_TOKEN_ENV).stdout
    assert '"total": 3' in cli("sessions", "list", *server, "--json",
                               env={**NO_TOKEN_ENV, "OTEL_SESSIONS_TOKEN_FILE": str(tmp_path / "query.token")}).stdout
    assert '"total": 3' in cli("sessions", "list", *server, "--json",
                               env={**NO_TOKEN_ENV, "OTEL_SESSIONS_TOKEN": QUERY}).stdout
    # the gRPC command too
    out = cli("grpc", "ListSessions", "--address", guarded.grpc_endpoint, "--token-file",
              str(tmp_path / "query.token"), env=NO_TOKEN_ENV).stdout
    assert '"total": "3"' in out  # uint64 in proto3 JSON
    # a bad file: exit 2, a message naming the flag, never a token
    result = cli("sessions", "list", *server, "--token-file", str(tmp_path / "absent"), env=NO_TOKEN_ENV, expect=2)
    assert "--token-file: no such file" in result.stderr
    result = cli("sessions", "list", *server, "--token", QUERY, "--token-file", str(tmp_path / "query.token"),
                 env=NO_TOKEN_ENV, expect=2)
    assert "both given" in result.stderr and QUERY not in result.stderr
    result = cli("demo", *server, "--token-file", str(tmp_path / "absent"), env=NO_TOKEN_ENV, expect=2)
    assert "--token-file: no such file" in result.stderr
