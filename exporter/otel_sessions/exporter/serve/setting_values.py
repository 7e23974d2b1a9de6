"""How the text of one setting becomes its value: durations, listen addresses, token files,
host names and origins, the worker count, the data folder; each raises ``ValueError`` with a
sentence naming what was wrong (``settings.py`` adds the flag and the env var)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["parse_duration", "parse_listen", "auto_workers", "AUTO_WORKERS_MAX", "default_data_dir",
           "read_token_file", "comma_list", "host_pattern", "origin", "redact_url"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Parse ``"500ms"``, ``"30s"``, ``"5m"``, ``"24h"``, ``"7d"`` (or bare seconds) to seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 24h)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``host:port`` (``[::1]:4317`` for IPv6); port 0 picks a free port."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not a host:port address: {text!r}")
    return host.strip("[]"), int(port)


#: Most server processes ``--workers auto`` starts.
AUTO_WORKERS_MAX = 8


def auto_workers(grpc_port: int, http_port: int) -> int:
    """``--workers auto``: one server process per core this process may run on (at most
    :data:`AUTO_WORKERS_MAX`), so that grouping and encoding, the larger part of ingest CPU, run
    on every core (on 2 cores the redis-server takes the rest); 1 when either port is 0, as
    workers share their ports and a port the system picks differs per process."""
    if grpc_port == 0 or http_port == 0:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(AUTO_WORKERS_MAX, cores))


def default_data_dir() -> Path:
    """Per-user data folder: ``$XDG_DATA_HOME/otel-sessions`` or ``~/.local/share/otel-sessions``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "otel-sessions"


def read_token_file(path: Path) -> str:
    """The token in ``path``, surrounding whitespace stripped; ValueError for a file that is
    missing, unreadable, not UTF-8, empty, or holding more than one word or control characters."""
    try:
        text = path.read_bytes().decode("utf-8").strip()
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc.__class__.__name__}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text:
        raise ValueError(f"{path} is empty")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise ValueError(f"{path} holds more than one token, or control characters: put the token alone in it")
    return text


def comma_list(value: Any) -> list[str]:
    if value in (None, "", (), []):
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


_HOST_NAME = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def host_pattern(text: str) -> str:
    """A ``--allowed-hosts`` entry, lower-cased: a host name, ``*.`` and a domain (any name
    under it), an IPv4 address, or an IPv6 address in brackets; no port."""
    host = text.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        import ipaddress

        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError(f"not an IPv6 address: {text!r}") from None
    if not _HOST_NAME.fullmatch(host) or len(host) > 253:
        raise ValueError(f"not a host name: {text!r} (a name without port or scheme, e.g. sessions.example.com, "
                         "or *.example.com for every name under it)")
    return host


_ORIGIN = re.compile(r"(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?")


def origin(text: str) -> str:
    """A ``--cors-origins`` entry as browsers send it in ``Origin``: scheme, host, port when not
    the scheme's default; lower-cased, no path."""
    origin = text.strip().lower().rstrip("/")
    match = _ORIGIN.fullmatch(origin)
    if not match:
        raise ValueError(f"not an origin: {text!r} (scheme, host and port only, e.g. https://app.example.com)")
    scheme, host, port = match.groups()
    if port and port[1:] == {"http": "80", "https": "443"}[scheme]:
        port = ""  # browsers leave a default port out of Origin
    return f"{scheme}://{host}{port or ''}"


def redact_url(url: str) -> str:
    """Hide a password in a Redis URL (``redis://:secret@host`` -> ``redis://:***@host``)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))
