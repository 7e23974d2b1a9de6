"""The README's service section is true: its example runs, its tables match the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from otel_sessions.exporter.serve.settings import OPTIONS
from tests.readme import readme_section

SECTION = "## The service: `otel-sessions serve`"


def _section() -> str:
    return readme_section(SECTION)


def test_example_sends_a_session_to_the_service(service):
    blocks = re.findall(r"```python\n(.*?)```", _section(), flags=re.S)
    assert blocks
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{service.grpc_endpoint}"
    for block in blocks:
        subprocess.run([sys.executable, "-c", block], check=True, env=env, timeout=60)
    s = service.session("sess_readme_example")
    assert s.user_id == "u-123" and s.name == "Support chat" and s.input_tokens == 120


def test_settings_table_lists_every_flag_and_env_var():
    section = _section()
    for option in OPTIONS:
        assert f"`{option.flag}`" in section and f"`{option.env}`" in section


def test_metrics_named_in_readme_exist(service):
    import urllib.request

    with urllib.request.urlopen(service.http_url + "/metrics") as response:
        exposed = response.read().decode()
    for name in re.findall(r"`(otel_sessions_[a-z_]+)", _section()):
        assert name in exposed, name
