"""``otel-sessions demo`` against a real service: ingest token, OTLP header env vars, refusals.

The demo's spans go through the stock OTLP/HTTP exporter; a service started with
``--ingest-token`` refuses them without the token, and the demo says so in one line and exits 1.
"""

from __future__ import annotations

import pytest

from tests.support import RunningService, cli, cli_json

TOKEN = "s3cret-ingest"
QUERY_TOKEN = "s3cret-query"  # with a token configured, lookups need one too


@pytest.fixture()
def guarded(redis_url):
    with RunningService(redis_url, ingest_token=TOKEN, query_token=QUERY_TOKEN) as running:
        yield running


def _clean_env() -> dict[str, str]:
    return {"OTEL_SESSIONS_INGEST_TOKEN": "", "OTEL_SESSIONS_TOKEN": "", "OTEL_EXPORTER_OTLP_HEADERS": "",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": ""}


def _stored(service) -> int:
    return cli_json("sessions", "list", "--token", QUERY_TOKEN, server=service.http_url)["total"]


def test_demo_without_the_ingest_token_is_one_line_and_exit_1(guarded):
    result = cli("demo", "--seed", "7", "--server", guarded.http_url, env=_clean_env(), expect=1)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"otel-sessions: error: the service at {guarded.http_url} did not store the demo's ")
    assert "401" in line and "--token" in line
    assert _stored(guarded) == 0


@pytest.mark.parametrize("how", ["--token", "OTEL_SESSIONS_INGEST_TOKEN", "OTEL_SESSIONS_TOKEN",
                                 "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"])
def test_demo_sends_the_token(guarded, how):
    env, extra = _clean_env(), []
    if how == "--token":
        extra = ["--token", TOKEN]
    elif how.startswith("OTEL_SESSIONS"):
        env[how] = TOKEN
    else:
        env[how] = f"x-team=demo,Authorization=Bearer%20{TOKEN}"
    out = cli("demo", "--seed", "7", "--server", guarded.http_url, *extra, env=env).stdout
    assert out.startswith("Sent 3 sessions")
    assert _stored(guarded) == 3


def test_a_wrong_token_is_refused(guarded):
    result = cli("demo", "--seed", "7", "--server", guarded.http_url, "--token", "wrong", env=_clean_env(),
                 expect=1)
    assert "401" in result.stderr and result.stderr.count("\n") == 1 and result.stdout == ""


def test_server_without_scheme_is_http(service):
    address = service.http_url.removeprefix("http://")
    out = cli("demo", "--seed", "7", "--server", address, env=_clean_env()).stdout
    assert out.startswith("Sent 3 sessions") and f"to http://{address}." in out
    assert cli_json("sessions", "list", "--server", address)["total"] == 3
