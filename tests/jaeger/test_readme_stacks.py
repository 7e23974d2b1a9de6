"""The README's section "Beside Jaeger, Grafana and the Collector": its commands are real.

``otel-sessions serve`` lines parse with the real CLI and settings; the ``demo`` line sends the
demo's sessions to a running service, then the ``curl`` lines run against it and find them; the
trace-id command prints the id the API serves; every ``collector-config/`` file named exists; every forwarding flag is documented.
"""

from __future__ import annotations

import json
import os
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
from tests.support import RunningService, wait_until

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Beside Jaeger, Grafana and the Collector"


def _section() -> str:
    return readme_section(SECTION)


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", _section(), flags=re.S)
    return [shlex.split(line, comments=True) for block in blocks for line in block.strip().splitlines()]


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


def test_examples_run_against_the_demos_data(redis_url):
    """The section's demo, trace-id and curl commands, in order, against a running service: the
    ids they name are the demo's (``demo --seed 7``)."""
    commands = _commands()
    demos = [c for c in commands if c[:2] == ["otel-sessions", "demo"]]
    assert demos == [["otel-sessions", "demo", "--seed", "7"]]
    (trace_id_command,) = [c for c in commands if c[0] == "python3"]
    printed = subprocess.run([sys.executable, *trace_id_command[1:]], capture_output=True, text=True,
                             check=True).stdout.strip()
    session_id = trace_id_command[-1]
    assert printed == session_trace_id(session_id).hex()

    with RunningService(redis_url) as service:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        demo = subprocess.run([sys.executable, "-m", "otel_sessions.exporter.cli", *demos[0][1:],
                               "--server", service.http_url, "--json"], capture_output=True, text=True,
                              timeout=120, env=env, check=True)
        sent = json.loads(demo.stdout)
        assert session_id in {s["id"] for s in sent["sessions"]}
        curls = [c for c in commands if c[0] == "curl"]
        assert len(curls) >= 3
        for command in curls:
            url = command[-1].replace("http://127.0.0.1:4318", service.http_url)
            body = wait_until(lambda url=url: _nonempty(url), message=url)
            assert set(body) == {"data", "total", "limit", "offset", "errors"}
            assert body["errors"] is None
            if "conversation" in url:  # the thread's traces of the demo's service
                for trace in body["data"]:
                    tags = {(t["key"], t["value"]) for span in trace["spans"] for t in span["tags"]}
                    assert ("gen_ai.conversation.id", sent["thread_id"]) in tags
                    assert {p["serviceName"] for p in trace["processes"].values()} == {"support-bot"}
            else:
                assert any(trace["traceID"] == printed for trace in body["data"]), url


def _nonempty(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    return body if body["data"] else None
