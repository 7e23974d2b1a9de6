"""Every code example of the README's processor section runs.

Python blocks run as they are, each in its own interpreter (they set global providers). Of the
bash blocks, the benchmark command runs here with fewer spans; the `opentelemetry-instrument`
command runs in ``test_processes.py`` with a real distro.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme import readme_section

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## In your app: the span processor"


def _blocks(language: str) -> list[str]:
    section = readme_section(SECTION)
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


PYTHON_BLOCKS = _blocks("python")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


def test_the_section_has_examples() -> None:
    assert len(PYTHON_BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / f"example_{index}.py"
    script.write_text(PYTHON_BLOCKS[index])
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=_env()
    )
    assert run.returncode == 0, run.stderr


def test_grouping_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    block = next(b for b in PYTHON_BLOCKS if "SessionGroupingSpanProcessor(" in b)
    expected = re.search(r"^# (\[.*\])$", block, flags=re.M).group(1)
    script = tmp_path / "grouping.py"
    script.write_text(block)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=_env())
    assert run.stdout.strip() == expected


def test_logs_example_exports_records_that_carry_the_session(tmp_path: Path) -> None:
    block = next(b for b in PYTHON_BLOCKS if "SessionLogProcessor()" in b)
    script = tmp_path / "logs.py"
    script.write_text(block)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=_env())
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert record["body"] == "refund approved"
    attributes = record["attributes"]
    assert (attributes["session.id"], attributes["gen_ai.conversation.id"], attributes["user.id"]) == (
        "sess-42", "thrd-7", "u-1",
    )


def test_log_filter_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    block = next(b for b in PYTHON_BLOCKS if "SessionLogFilter()" in b)
    expected = [line.removeprefix("# ") for line in block.split("# Printed:\n", 1)[1].splitlines()]
    script = tmp_path / "log_filter.py"
    script.write_text(block)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=_env())
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == expected


def test_benchmark_command_runs() -> None:
    (command,) = [b.strip() for b in _blocks("bash") if "processor_overhead" in b]
    args = command.split()
    assert args[:2] == [".venv/bin/python", "bench/processor_overhead.py"]
    run = subprocess.run(
        [sys.executable, str(ROOT / args[1]), *args[2:], "--spans", "300", "--rounds", "1"],
        capture_output=True, text=True, timeout=120, env=_env(),
    )
    assert run.returncode == 0, run.stderr
    assert "session / none" in run.stdout
