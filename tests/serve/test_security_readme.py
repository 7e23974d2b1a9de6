"""The README's "Security defaults" example runs: tokens made into files, ``serve`` with them
(parsed by the real CLI and settings, then started on free ports), a lookup with
``--token-file``; and what the section says about warnings and statuses matches the code."""

from __future__ import annotations

import re
import shlex

from otel_sessions.exporter.cli import build_parser
from otel_sessions.exporter.serve.host_check import MISDIRECTED
from otel_sessions.exporter.serve.settings import Settings
from tests.readme import readme_section
from tests.serve.test_http_edges import request
from tests.support import RunningService, cli


def _subsection() -> str:
    section = readme_section("## Tenants and access")
    return section.split("### Security defaults", 1)[1].split("\n### ", 1)[0]


def test_the_example_runs(tmp_path, redis_url):
    (block,) = re.findall(r"```bash\n(.*?)```", _subsection(), flags=re.S)
    lines = block.strip().splitlines()
    makers = [line for line in lines if line.startswith("otel-sessions tokens new --out")]
    assert len(makers) == 2
    for line in makers:
        args = shlex.split(line.split("#", 1)[0])[1:]
        args[-1] = str(tmp_path / args[-1])  # the file named after --out, in the test's folder
        cli(*args)
    assert all(((tmp_path / n).stat().st_mode & 0o077) == 0 for n in ("ingest.token", "query.token"))
    (serve,) = [shlex.split(line) for line in lines if line.startswith("otel-sessions serve")]
    args = vars(build_parser().parse_args(serve[1:]))
    for name in ("ingest_token_file", "query_token_file"):
        args[name] = str(tmp_path / args[name])
    settings = Settings.resolve({k: v for k, v in args.items() if k != "command"}, env={})
    assert settings.query_token == (tmp_path / "query.token").read_text().strip()
    assert settings.allowed_hosts == ("sessions.example.com",)
    options = {k: v for k, v in args.items() if k not in ("command",) and v is not None}
    options.update(grpc_listen="0.0.0.0:0", http_listen="0.0.0.0:0")
    with RunningService(redis_url, **options) as service:
        (lookup,) = [shlex.split(line) for line in lines if line.startswith("otel-sessions sessions")]
        assert lookup[-2:] == ["--token-file", "query.token"]
        lookup[-1] = str(tmp_path / "query.token")
        out = cli(*lookup[1:], "--server", service.http_url, "--json", env={"OTEL_SESSIONS_TOKEN": ""}).stdout
        assert '"total": 0' in out
        cli(*lookup[1:-2], "--server", service.http_url, env={"OTEL_SESSIONS_TOKEN": ""}, expect=1)  # no token
        assert request(service, "GET", "/healthz", {"Host": "10.0.0.9"})[0] == 200
        bearer = "Bearer " + settings.query_token
        assert request(service, "GET", "/v1/sessions", {"Host": "sessions.example.com", "Authorization": bearer})[0] == 200
        assert request(service, "GET", "/v1/sessions", {"Host": "10.0.0.9", "Authorization": bearer})[0] == MISDIRECTED


def test_the_section_names_the_statuses_and_settings():
    text = _subsection()
    assert "421 Misdirected Request" in text and MISDIRECTED == 421
    for name in ("--ingest-token-file", "--query-token-file", "OTEL_SESSIONS_INGEST_TOKEN_FILE", "--allowed-hosts",
                 "OTEL_SESSIONS_ALLOWED_HOSTS", "--cors-origins", "OTEL_SESSIONS_CORS_ORIGINS", "otel_sessions.audit",
                 "collector-config/tenant-token.yaml"):
        assert name in text, name
