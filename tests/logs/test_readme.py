"""The README's "Session logs" section: its app example sends records a real service stores,
every command and request of it runs against that service, and the metrics it names exist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

from tests.readme import readme_section

SECTION = "## Session logs"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", readme_section(SECTION), re.S)


def test_section_examples_run(service):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{service.grpc_endpoint}"
    (app,) = _blocks("python")
    subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", app], check=True, env=env, timeout=60)
    s = service.session("sess_logs_example")
    assert (s.log_count, s.error_log_count, s.first_error_log_message) == (3, 1, "refund failed: card expired")
    assert s.span_count == 1 and s.thread_id == "thrd_logs_example"

    env = {**env, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "OTEL_SESSIONS_SERVER": service.http_url}
    outputs = {}
    (commands,) = _blocks("bash")
    for line in commands.strip().splitlines():
        command = line.replace("http://127.0.0.1:4318", service.http_url).replace("127.0.0.1:4317",
                                                                                   service.grpc_endpoint)
        result = subprocess.run(["bash", "-c", f"set -euo pipefail; {command}"], capture_output=True, text=True,
                                timeout=120, env=env)
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        outputs[line] = result.stdout
    lines = outputs["otel-sessions sessions logs sess_logs_example"].splitlines()
    assert [line.split(maxsplit=4)[1] for line in lines] == ["INFO", "WARN", "ERROR"]
    assert all(" support-bot " in line for line in lines)
    warned = json.loads(outputs["otel-sessions sessions logs sess_logs_example --min-severity WARN --json"])
    assert [r["severity_text"] for r in warned["data"]] == ["WARN", "ERROR"]
    errors = outputs["otel-sessions threads logs thrd_logs_example --min-severity ERROR"].splitlines()
    assert len(errors) == 1 and errors[0].endswith("refund failed: card expired")
    curls = [out for line, out in outputs.items() if line.startswith("curl")]
    assert [r["body"] for r in json.loads(curls[0])["data"]] == ["order 42 was paid by card: refund takes 5 days",
                                                                  "refund failed: card expired"]
    assert len(json.loads(curls[1])["resourceLogs"]) == 1
    assert json.loads(curls[2])["total"] == 3
    grpc = json.loads(next(out for line, out in outputs.items() if "GetSessionLogs" in line))
    assert [r["body"]["stringValue"] for rl in grpc["resourceLogs"] for sl in rl["scopeLogs"]
            for r in sl["logRecords"]] == ["refund failed: card expired"]


def test_metrics_named_exist(service):
    with urllib.request.urlopen(service.http_url + "/metrics") as response:
        exposed = response.read().decode()
    names = re.findall(r"`(otel_sessions_[a-z_]+)", readme_section(SECTION))
    assert names
    for name in names:
        assert name in exposed, name
