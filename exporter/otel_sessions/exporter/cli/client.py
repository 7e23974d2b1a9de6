"""The lookup commands' HTTP client of the service's REST API (standard library only).

Every failure is a :class:`ServiceError` whose ``exit_code`` the command returns: the
service's ``error`` message and the HTTP status, exit code 2 for a 400 (a bad parameter) and 1
for any other status; an unreachable service is a one-line hint about ``--server``, exit code 1.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["DEFAULT_SERVER", "ServiceError", "Client"]

DEFAULT_SERVER = "http://127.0.0.1:4318"


class ServiceError(Exception):
    """A lookup failed; ``exit_code`` is what the command returns."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Client:
    """A small HTTP client of the REST API; ``token`` is sent as a bearer token when set."""

    def __init__(self, server: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout

    def open(self, method: str, path: str, params: dict[str, Any] | None = None, timeout: float | None = None):
        """The open response of ``method path?params`` (None and empty params left out)."""
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
        url = self.server + path + ("?" + query if query else "")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
                message = body.get("error") or exc.reason
            except ValueError:
                message = exc.reason
            raise ServiceError(f"{message} (HTTP {exc.code})", 2 if exc.code == 400 else 1) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(f"cannot reach the otel-sessions service at {self.server}: {reason}. "
                               "Is `otel-sessions serve` running? Point --server or OTEL_SESSIONS_SERVER at it.") from None

    def get(self, path: str, **params: Any) -> Any:
        with self.open("GET", path, params) as response:
            return json.loads(response.read())

    def delete(self, path: str) -> None:
        with self.open("DELETE", path):
            pass
