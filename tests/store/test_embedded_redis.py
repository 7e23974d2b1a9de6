"""The embedded redis-server of ``otel-sessions serve``: one ``serve`` per --data-dir, its
redis-server dies with it, even on kill -9, and one left running (an orphan) is stopped by the
next ``serve``, while an unrelated process whose pid is in the pid file is never touched.

Real processes only: ``serve`` runs as a subprocess on port 0 with a temporary --data-dir, and
the redis-servers of that folder are found in /proc (a redis-server chdirs into its --dir).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from otel_sessions.exporter.store.embedded_redis import EmbeddedRedis
from otel_sessions.exporter.store.process_control import free_port
from tests.ingest.test_bad_input import InMemoryOne

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds processes in /proc"),
    pytest.mark.timeout(120),
]

SERVE = [sys.executable, "-m", "otel_sessions.exporter.cli", "serve"]


def redis_servers_in(folder: Path) -> list[int]:
    """Pids of the live (not zombie) redis-servers whose working directory is ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("redis-server"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue
            if os.path.realpath(entry / "cwd") == os.path.realpath(folder):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def eventually(check, timeout: float = 10.0):
    """Poll ``check`` until it returns something true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


class Serve:
    """One ``otel-sessions serve`` subprocess whose output lines are read by a thread."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [*SERVE, "--data-dir", str(data_dir), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
             *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={name: value for name, value in os.environ.items()
                 if not name.startswith("OTEL_SESSIONS_") or name == "OTEL_SESSIONS_REDIS_SERVER"},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """The first output line matching ``pattern``, waiting for it at most ``timeout`` seconds."""
        for line in self.lines:
            if m := re.search(pattern, line):
                return m
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r}:\n{self.output}")

    def ready(self) -> Serve:
        self.wait_for(r"ready$")
        self.grpc = self.wait_for(r"OTLP/gRPC on ([\d.]+:\d+)").group(1)
        self.http = self.wait_for(r"OTLP/HTTP on (http://[\d.]+:\d+)").group(1)
        self.redis_pid = int(self.wait_for(r"embedded redis-server \(pid (\d+)\)").group(1))
        # serve installs its SIGTERM handler just after it says "ready": once it has answered a
        # request, a SIGTERM stops it cleanly
        assert _status(self.http + "/readyz") == 200
        return self

    def finish(self, timeout: float = 30.0) -> int:
        """Wait for the exit (at most ``timeout`` seconds) and read the rest of the output."""
        code = self.process.wait(timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.finish()


@pytest.fixture()
def processes():
    """Processes a test starts: each is killed (and reaped) at the end whatever happened."""
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)


@pytest.fixture()
def serve(processes):
    """``serve(data_dir, *flags)`` starts ``otel-sessions serve``; every one is killed at the end."""
    def start(data_dir: Path, *extra: str) -> Serve:
        running = Serve(data_dir, *extra)
        processes.append(running.process)
        return running

    return start


def test_kill_9_of_serve_takes_its_redis_server_along(tmp_path, serve):
    folder = tmp_path / "redis"
    first = serve(tmp_path).ready()
    assert redis_servers_in(folder) == [first.redis_pid]

    first.process.kill()
    first.process.wait(10)
    assert eventually(lambda: not redis_servers_in(folder), 10), "redis-server outlived its serve"
    assert not (folder / "redis.pid").exists()  # it got SIGTERM: a clean shutdown

    second = serve(tmp_path).ready()  # and the next one starts as after a clean stop
    assert redis_servers_in(folder) == [second.redis_pid]
    assert second.stop() == 0
    assert not redis_servers_in(folder)


def _status(url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _refusal(second: Serve) -> str:
    """The one error line of a ``serve`` that must refuse to start, once it has exited non-zero."""
    assert second.finish(timeout=20) != 0, second.output
    errors = [line for line in second.lines if "error" in line]
    assert len(errors) == 1, second.output
    assert not any("redis-server (pid" in line or "ready" in line for line in second.lines), second.output
    return errors[0]


def test_a_second_serve_on_the_same_folder_refuses_and_leaves_the_first_alone(tmp_path, serve):
    folder = tmp_path / "redis"
    first = serve(tmp_path).ready()
    socket_before = (folder / "redis.sock").stat().st_ino

    message = _refusal(serve(tmp_path))
    assert f"in use by another otel-sessions serve (pid {first.process.pid}," in message
    assert first.grpc in message and first.http.removeprefix("http://") in message
    assert "unix://" + str(folder / "redis.sock") in message and "--data-dir" in message

    # nothing of the first one was touched: the same redis-server on the same socket
    assert redis_servers_in(folder) == [first.redis_pid]
    assert (folder / "redis.sock").stat().st_ino == socket_before
    for i in range(10):  # and it answers every request, none with 503
        assert _status(first.http + "/readyz") == 200
        body = encode_spans(InMemoryOne(f"sess-first-{i}").spans).SerializeToString()
        assert _status(first.http + "/v1/traces", body) == 200
        assert _status(f"{first.http}/v1/sessions/sess-first-{i}") == 200
    assert first.stop() == 0
    assert "embedded redis stopped" in first.output
    assert not redis_servers_in(folder)

    third = serve(tmp_path).ready()  # once the first is gone, the folder is free again
    assert _status(f"{third.http}/v1/sessions/sess-first-9") == 200
    assert third.stop() == 0


def test_with_workers_the_parent_holds_the_folder(tmp_path, serve):
    grpc_port, http_port = free_port(), free_port()
    first = serve(tmp_path, "--workers", "2", "--grpc-listen", f"127.0.0.1:{grpc_port}",
                  "--http-listen", f"127.0.0.1:{http_port}").ready()
    message = _refusal(serve(tmp_path))
    assert f"(pid {first.process.pid}," in message
    assert f"127.0.0.1:{grpc_port}" in message and f"127.0.0.1:{http_port}" in message  # the workers listen
    assert redis_servers_in(tmp_path / "redis") == [first.redis_pid]
    assert _status(f"http://127.0.0.1:{http_port}/readyz") == 200
    assert first.stop() == 0


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def test_kill_9_of_serve_takes_its_workers_along(tmp_path, serve):
    grpc_port, http_port = free_port(), free_port()
    first = serve(tmp_path, "--workers", "2", "--grpc-listen", f"127.0.0.1:{grpc_port}",
                  "--http-listen", f"127.0.0.1:{http_port}").ready()
    children = _children(first.process.pid)
    assert len(children) >= 3, children  # two workers and the redis-server
    first.process.kill()
    first.process.wait(10)
    assert eventually(lambda: not any(_state_alive(pid) for pid in children), 15), "a worker outlived serve"
    assert _status_or_none(f"http://127.0.0.1:{http_port}/healthz") is None  # nobody listens any more


def _state_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _status_or_none(url: str) -> int | None:
    try:
        return _status(url)
    except OSError:
        return None


def _orphan(folder: Path, processes: list) -> subprocess.Popen:
    """A redis-server of ``folder`` as ``serve`` runs it, with no ``serve`` around: an orphan."""
    folder.mkdir(parents=True, exist_ok=True)
    orphan = subprocess.Popen(EmbeddedRedis(folder, port=0, persistent=True).command(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    processes.append(orphan)
    client = redis.Redis(unix_socket_path=str(folder / "redis.sock"), socket_timeout=2)
    assert eventually(lambda: _answers(client), 10), "the orphan did not start"
    client.set("written-by-the-orphan", "yes")
    client.close()
    return orphan


def _answers(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.RedisError:
        return False


@pytest.mark.parametrize("pid_file", ["kept", "removed"])
def test_next_serve_stops_an_orphaned_redis_server_then_works(tmp_path, serve, processes, pid_file):
    folder = tmp_path / "redis"
    orphan = _orphan(folder, processes)
    assert (folder / "redis.pid").read_text().strip() == str(orphan.pid)
    if pid_file == "removed":  # as one left by a version that wrote none: found in /proc
        (folder / "redis.pid").unlink()

    running = serve(tmp_path).ready()
    assert orphan.wait(10) == 0  # stopped with SIGTERM: a clean shutdown, append-only file flushed
    stopped = [line for line in running.lines if "stopped redis-server" in line]
    assert stopped == [f"otel-sessions: redis: stopped redis-server pid {orphan.pid}, left running in {folder} "
                       "by a serve that is gone"]
    assert redis_servers_in(folder) == [running.redis_pid]
    body = encode_spans(InMemoryOne("sess-after-orphan").spans).SerializeToString()
    assert _status(running.http + "/v1/traces", body) == 200
    assert _status(f"{running.http}/v1/sessions/sess-after-orphan") == 200
    client = redis.Redis(unix_socket_path=str(folder / "redis.sock"), socket_timeout=2)
    assert client.get("written-by-the-orphan") == b"yes"  # its data carried over
    client.close()
    assert running.stop() == 0


def test_an_orphan_that_ignores_sigterm_is_killed(tmp_path, serve, processes):
    folder = tmp_path / "redis"
    orphan = _orphan(folder, processes)
    orphan.send_signal(signal.SIGSTOP)  # SIGTERM stays pending, SIGKILL still works
    started = time.monotonic()
    running = serve(tmp_path).ready()
    assert orphan.wait(10) == -signal.SIGKILL
    assert 9 < time.monotonic() - started < 60  # after the 10 s it is given to stop
    assert f"stopped redis-server pid {orphan.pid}" in running.output
    assert _status(running.http + "/readyz") == 200
    assert running.stop() == 0


@pytest.mark.parametrize("unrelated", ["sleep", "redis-server of another folder"])
def test_an_unrelated_process_with_the_pid_of_the_pid_file_is_never_signalled(tmp_path, serve, processes, unrelated):
    folder = tmp_path / "redis"
    folder.mkdir()
    if unrelated == "sleep":  # even with its working directory in the folder
        other = subprocess.Popen(["sleep", "120"], cwd=folder, start_new_session=True)
    else:
        (tmp_path / "elsewhere").mkdir()
        other = subprocess.Popen(EmbeddedRedis(tmp_path / "elsewhere", port=0).command(),
                                 stdout=subprocess.DEVNULL, start_new_session=True)
    processes.append(other)
    if unrelated != "sleep":
        assert eventually(lambda: redis_servers_in(tmp_path / "elsewhere") == [other.pid], 10)
    (folder / "redis.pid").write_text(f"{other.pid}\n")

    running = serve(tmp_path).ready()
    assert "stopped redis-server" not in running.output
    assert _status(running.http + "/readyz") == 200
    assert running.stop() == 0
    assert other.poll() is None, "an unrelated process was signalled"


def test_the_embedded_redis_keeps_its_files_to_its_owner(tmp_path):
    """Every tenant's sessions are in the append-only file: folder 0700, files 0600."""
    folder = tmp_path / "redis"
    folder.mkdir(mode=0o755)
    server = EmbeddedRedis(folder, port=0, persistent=True).start()
    try:
        client = redis.Redis(unix_socket_path=str(server.socket_path))
        client.set("k", "v")
        client.close()
        files = [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".sock")]
        assert files and all(p.stat().st_mode & 0o077 == 0 for p in files), [(p, oct(p.stat().st_mode)) for p in files]
        assert folder.stat().st_mode & 0o077 == 0
    finally:
        server.stop()
