"""A private, real ``redis-server`` process owned by this process.

``serve`` starts one when no ``--redis-url`` is configured, with an append-only file under the
data directory so sessions survive a restart. The test suite uses the same class with
persistence off, on a free TCP port, so tests never touch a shared Redis.

Contract: :meth:`EmbeddedRedis.start` returns only once the server answers ``PING``;
:meth:`EmbeddedRedis.stop` is idempotent and waits for the process to exit (the server
flushes its append-only file on a clean shutdown).

The server dies with its parent, even when the parent is killed with SIGKILL: on Linux it
starts through a small trampoline (``python -c``) that sets ``PR_SET_PDEATHSIG`` to SIGTERM,
checks that the parent is still there, then execs ``redis-server`` (same pid), so SIGTERM
reaches it when the parent goes and it shuts down cleanly. This avoids ``preexec_fn``, which
is unsafe in a process that runs threads. Linux sends the signal when the *thread* that
started the child ends, not the process: call :meth:`EmbeddedRedis.start` from a thread that
lives as long as the server should (``serve`` and the test suite use the main thread).
Elsewhere there is no such signal.

With ``owner`` set (``serve`` sets it), one process at a time runs the server of a folder:
:meth:`EmbeddedRedis.start` first takes an exclusive ``flock`` on ``serve.lock`` in it, held
until :meth:`EmbeddedRedis.stop` or the end of the process (the kernel drops it even on
SIGKILL), and records the holder's pid there. A second owner gets :class:`DataDirInUse`
naming the first, before it has touched anything in the folder. An owner that gets the lock
knows no live owner has the folder, so a redis-server still running there is an orphan (its
owner died without stopping it, where the death signal is unavailable or was lost): it stops
it, cleanly with SIGTERM, SIGKILL after a bound, before it starts its own (``stopped_orphans``).
A process counts as such an orphan only if it is a redis-server whose working directory is the
folder (on Linux, from /proc; elsewhere the server on the folder's socket must report that pid
and directory), so an unrelated process that got the pid of ``redis.pid`` is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

from otel_sessions.exporter.store.process_control import (
    RedisBinaryNotFound,
    die_with_parent,
    find_redis_server,
    free_port,
    is_alive,
    listening_addresses,
    stop_process,
)

__all__ = ["DataDirInUse", "EmbeddedRedis", "RedisBinaryNotFound"]

LOCK_FILE = "serve.lock"
ORPHAN_STOP_SECONDS = 10.0  # for an orphaned redis-server to stop on SIGTERM, before SIGKILL


class DataDirInUse(RuntimeError):
    """Another live process owns the folder of the embedded Redis (see ``owner``)."""

    def __init__(self, data_dir: Path, holder: dict) -> None:
        self.data_dir = data_dir
        self.holder = holder
        pid = holder.get("pid")
        details = [f"pid {pid}" if isinstance(pid, int) else "pid unknown"]
        listening = listening_addresses(pid) if isinstance(pid, int) else []
        if listening:
            details.append("listening on " + ", ".join(listening))
        if holder.get("redis"):
            details.append(f"Redis at {holder['redis']}")
        super().__init__(f"{data_dir} is in use by another {holder.get('owner') or 'process'} "
                         f"({', '.join(details)})")


def _read_holder(fd: int) -> dict:
    """What the holder of a lock file recorded in it (it may be writing it still: retry a moment)."""
    deadline = time.monotonic() + 0.5
    while True:
        try:
            holder = json.loads(os.pread(fd, 4096, 0))
            if isinstance(holder, dict):
                return holder
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.02)


class EmbeddedRedis:
    """One ``redis-server`` child process.

    :param data_dir: working directory of the server (append-only file, logs, socket, pid file).
    :param port: TCP port on 127.0.0.1; ``None`` picks a free one, ``0`` listens on a
        unix socket only.
    :param persistent: keep an append-only file (``appendfsync everysec``) in ``data_dir``.
    :param extra_args: more ``redis-server`` arguments, e.g. ``["--cluster-enabled", "yes"]``.
    :param owner: who runs the server, e.g. ``"otel-sessions serve"``: when set, :meth:`start`
        takes the folder's lock (``serve.lock``) first and raises :class:`DataDirInUse`, naming
        the holder, if another live process has it.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = 0,
        persistent: bool = True,
        extra_args: list[str] | None = None,
        owner: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()  # redis-server chdirs into it before using paths
        self.port = free_port() if port is None else port
        self.persistent = persistent
        self.extra_args = list(extra_args or [])
        self.owner = owner
        self._process: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        #: pids of the orphaned redis-servers of this folder the last :meth:`start` stopped
        self.stopped_orphans: list[int] = []

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        """A redis-py URL for this server."""
        if self.port == 0:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def pid_file(self) -> Path:
        """Written by redis-server as it starts, removed on its clean shutdown."""
        return self.data_dir / "redis.pid"

    def command(self) -> list[str]:
        """The ``redis-server`` command line :meth:`start` runs (in ``data_dir``)."""
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--daemonize", "no",
            "--logfile", "redis.log",
            "--protected-mode", "yes",
            "--pidfile", str(self.pid_file),
        ]
        if self.port == 0:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--appendonly", "no"]
        return args + self.extra_args

    @property
    def lock_file(self) -> Path:
        return self.data_dir / LOCK_FILE

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        # every tenant's sessions end up in its files: its folder and files are its owner's only
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.chmod(0o700)
        self.stopped_orphans = []
        if self.owner is not None and self._lock_fd is None:
            self._lock()
        try:
            if self.owner is not None:
                self._stop_orphans()
            self._run(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, timeout: float) -> None:
        self._process = subprocess.Popen(
            die_with_parent(self.command()),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            umask=0o077,  # the append-only file, its manifest and the log: readable by the owner only
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                log = self._read_log()
                raise RuntimeError(f"redis-server exited with code {self._process.returncode}: {err}{log}")
            if self._ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer PING within {timeout}s")

    def _lock(self) -> None:
        """Take the folder's lock for this process, or raise :class:`DataDirInUse`."""
        import fcntl

        try:
            # not inherited (O_CLOEXEC): neither redis-server nor the workers hold it
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise RuntimeError(f"cannot open {self.lock_file}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirInUse(self.data_dir, holder) from None
        except OSError as exc:
            os.close(fd)
            raise RuntimeError(f"cannot lock {self.lock_file}: {exc}") from None
        record = json.dumps({"owner": self.owner, "pid": os.getpid(), "redis": self.url}).encode() + b"\n"
        os.pwrite(fd, record, 0)
        os.ftruncate(fd, len(record))
        self._lock_fd = fd

    def _stop_orphans(self) -> None:
        """Stop the redis-servers left running in this folder (we hold its lock: no owner lives)."""
        candidates = []
        with contextlib.suppress(OSError, ValueError):
            candidates.append(int(self.pid_file.read_text().strip()))
        if Path("/proc/self/cwd").exists():  # also those that wrote no pid file (older versions)
            candidates += [int(entry.name) for entry in Path("/proc").iterdir()
                           if entry.name.isdigit() and int(entry.name) not in candidates]
        try:  # the process name of a redis-server binary named otherwise (Linux keeps 15 bytes)
            names = ("redis-server", Path(find_redis_server()).name[:15])
        except RedisBinaryNotFound:
            names = ("redis-server",)
        for pid in candidates:
            if pid == os.getpid() or not self._is_ours(pid, names):
                continue
            stopped = stop_process(pid, lambda pid=pid: self._is_ours(pid, names), ORPHAN_STOP_SECONDS)
            if stopped is False:
                raise RuntimeError(f"redis-server pid {pid}, left running in {self.data_dir}, does not stop")
            if stopped:
                self.stopped_orphans.append(pid)

    def _is_ours(self, pid: int, names: tuple[str, ...]) -> bool:
        """Whether ``pid`` is a live redis-server of this folder (a redis-server chdirs into --dir)."""
        proc = Path(f"/proc/{pid}")
        if Path("/proc/self/cwd").exists():
            try:
                return ((proc / "comm").read_text().strip() in names
                        and is_alive(pid)
                        and os.path.realpath(proc / "cwd") == os.path.realpath(self.data_dir))
            except OSError:  # gone, or another user's
                return False
        if not is_alive(pid):  # no /proc: ask the server on this folder's socket or port who it is
            return False
        try:
            import redis

            client = (redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2) if self.port == 0
                      else redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2))
            try:
                return (int(client.info("server")["process_id"]) == pid
                        and os.path.realpath(client.config_get("dir")["dir"]) == os.path.realpath(self.data_dir))
            finally:
                client.close()
        except Exception:  # noqa: BLE001 - not reachable, not a Redis, not answering: not known to be ours
            return False

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # the lock goes with the last descriptor; the file stays (see _lock)

    def _read_log(self) -> str:
        try:
            return (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _ping(self) -> bool:
        try:
            if self.port == 0:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
            else:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            with sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM: it writes its append-only file and exits), then free the folder."""
        proc, self._process = self._process, None
        try:
            if proc is None or proc.poll() is not None:
                return
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            self._unlock()

    def kill(self) -> None:
        """Kill the server without a clean shutdown (tests of outages)."""
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
