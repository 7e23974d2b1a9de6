"""The README's section "Beside Jaeger, Grafana and the Collector": its commands are real.

``otel-sessions serve`` lines parse with the real CLI and settings; ``curl`` lines run against
a running service holding the session they name; the trace-id command prints the id the API
serves; every ``collector-config/`` file named exists; every forwarding flag is documented.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

from otel_sessions.exporter.cli import build_parser
from otel_sessions.exporter.jaeger.translate import session_trace_id
from otel_sessions.exporter.serve.settings import OPTIONS, Settings
from tests.readme import readme_section
from tests.stacks.helpers import send, tracer, wait_until
from tests.support import RunningService

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Beside Jaeger, Grafana and the Collector"


def _section() -> str:
    return readme_section(SECTION)


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", _section(), flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.strip().splitlines()]


def test_serve_commands_parse_with_the_real_cli():
    serves = [c for c in _commands() if c[:2] == ["otel-sessions", "serve"]]
    assert len(serves) >= 3
    for command in serves:
        args = build_parser().parse_args(command[1:])
        Settings.resolve({k: v for k, v in vars(args).items() if k != "command"}, env={})


def test_every_forwarding_option_is_documented():
    section = _section()
    for option in OPTIONS:
        if option.name.startswith("forward"):
            assert f"`{option.flag}`" in section and f"`{option.env}`" in section


def test_collector_files_named_exist():
    commands = _commands()
    named = [arg for c in commands for arg in c if arg.startswith("collector-config/")]
    assert named
    for name in named:
        assert (ROOT / name).is_file(), name
    for link in re.findall(r"\]\((collector-config/[^)]*)\)", _section()):
        assert (ROOT / link).exists(), link


def test_curl_and_trace_id_commands_run_against_the_service(redis_url):
    commands = _commands()
    (trace_id_command,) = [c for c in commands if c[0] == "python3"]
    printed = subprocess.run([sys.executable, *trace_id_command[1:]], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert printed == session_trace_id("sess_123").hex()

    t, memory = tracer("support-bot")
    with t.start_as_current_span("chat", attributes={"session.id": "sess_123", "user.id": "u-42",
                                                     "gen_ai.conversation.id": "thrd_9"}):
        with t.start_as_current_span("llm"):
            pass
    with RunningService(redis_url) as service:
        send(service.grpc_endpoint, memory.get_finished_spans())
        curls = [c for c in commands if c[0] == "curl"]
        assert len(curls) >= 3
        for command in curls:
            url = command[-1].replace("http://127.0.0.1:4318", service.http_url)
            body = wait_until(lambda url=url: _nonempty(url), message=url)
            assert set(body) == {"data", "total", "limit", "offset", "errors"}
            assert body["errors"] is None
            assert any(trace["traceID"] == printed for trace in body["data"]) or "conversation" in url


def _nonempty(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    return body if body["data"] else None
