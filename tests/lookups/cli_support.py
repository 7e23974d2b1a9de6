"""Running ``otel-sessions`` as a subprocess, the way users do."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time


def cli(*args: str, server: str | None = None, timeout: float = 60, env: dict | None = None,
        expect: int | None = 0) -> subprocess.CompletedProcess:
    """Run ``python -m otel_sessions.exporter.cli ARGS``; checks the exit status when ``expect`` is set."""
    environment = {**os.environ, **(env or {})}
    environment.pop("OTEL_SESSIONS_QUERY_TOKEN", None)
    if server is not None:
        environment["OTEL_SESSIONS_SERVER"] = server
    result = subprocess.run([sys.executable, "-m", "otel_sessions.exporter.cli", *args], capture_output=True,
                            text=True, timeout=timeout, env=environment)
    if expect is not None:
        assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
    return result


def cli_json(*args: str, server: str | None = None):
    return json.loads(cli(*args, "--json", server=server).stdout)


class LineReader:
    """Lines of a running process's stdout, read in a thread, with a deadline per wait."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no matching line within {timeout}s; got {self.lines}"
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, f"process ended; output: {self.lines}"
            self.lines.append(line)
            if predicate(line):
                return line
