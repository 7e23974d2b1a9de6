"""The lookup commands' HTTP client of the service's REST API (standard library only).

Every failure is a :class:`ServiceError` whose ``exit_code`` the command returns: the
service's ``error`` message and the HTTP status, exit code 2 for a 400 (a bad parameter) and 1
for any other status; an unreachable service is a one-line hint about ``--server``, exit code 1;
a service that was reached but did not answer within the timeout says so (exit code 1); a
``--server`` that is not a URL is exit code 2. ``--server`` without a scheme is taken as
``http://`` (:func:`server_url`).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["DEFAULT_SERVER", "ServiceError", "Client", "server_url", "TAIL_SILENCE_S", "tail_lines"]

DEFAULT_SERVER = "http://127.0.0.1:4318"
#: Seconds a tail (``sessions tail``, ``sessions logs --follow``) waits for a line: a span, a
#: record or one of the service's ``: keep-alive`` comments, sent every 5 s.
TAIL_SILENCE_S = 30.0


def server_url(server: str) -> str:
    """``server`` as a base URL: ``http://`` is assumed when it names no scheme
    (``localhost:4318`` -> ``http://localhost:4318``); a trailing ``/`` is dropped."""
    server = server.strip()
    if "://" not in server:
        server = "http://" + server
    return server.rstrip("/")


class ServiceError(Exception):
    """A lookup failed; ``exit_code`` is what the command returns."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Client:
    """A small HTTP client of the REST API; ``token`` is sent as a bearer token when set."""

    def __init__(self, server: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.server = server_url(server)
        self.token = token
        self.timeout = timeout

    def open(self, method: str, path: str, params: dict[str, Any] | None = None, timeout: float | None = None):
        """The open response of ``method path?params`` (None and empty params left out)."""
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
        url = self.server + path + ("?" + query if query else "")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        timeout = timeout or self.timeout
        try:
            request = urllib.request.Request(url, method=method, headers=headers)
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"{_error_message(exc)} (HTTP {exc.code})", 2 if exc.code == 400 else 1) from None
        except (http.client.InvalidURL, ValueError) as exc:  # e.g. a port that is not a number
            raise ServiceError(f"--server {self.server!r} is not a usable URL: {exc}", 2) from None
        except (TimeoutError, http.client.HTTPException) as exc:  # connected, then no (whole) answer
            raise self.no_answer(exc, timeout) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(f"cannot reach the otel-sessions service at {self.server}: {reason}. "
                               "Is `otel-sessions serve` running? Point --server or OTEL_SESSIONS_SERVER at it.") from None

    def no_answer(self, exc: BaseException, timeout: float) -> ServiceError:
        """The error of a service that was reached but whose answer did not come (whole)."""
        if isinstance(exc, TimeoutError):
            return ServiceError(f"the otel-sessions service at {self.server} did not answer within {timeout:g} s "
                                "(timed out); it is reachable but busy or stuck")
        return ServiceError(f"the otel-sessions service at {self.server} closed the connection before its "
                            f"answer was complete ({type(exc).__name__})")

    def get(self, path: str, **params: Any) -> Any:
        with self.open("GET", path, params) as response:
            try:
                data = response.read()
            except (TimeoutError, http.client.HTTPException, OSError) as exc:
                raise self.no_answer(exc, self.timeout) from None
        try:
            return json.loads(data)
        except ValueError:
            raise ServiceError(f"the answer of {self.server}{path} is not JSON: is --server the HTTP port of "
                               "otel-sessions?") from None

    def delete(self, path: str) -> None:
        with self.open("DELETE", path):
            pass


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The ``error`` of a JSON object body, else the HTTP reason phrase."""
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError, http.client.HTTPException):
        return str(exc.reason)
    message = body.get("error") if isinstance(body, dict) else None
    return str(message) if message else str(exc.reason)


def tail_lines(response, server: str, session_id: str, silence_s: float = TAIL_SILENCE_S):
    """The lines of a tail stream (``response`` opened with ``timeout=silence_s``), then a
    :class:`ServiceError` (exit status 1) once it ends: the service going away, a broken
    connection, or no line for ``silence_s`` seconds."""
    try:
        yield from response
    except TimeoutError:
        raise ServiceError(f"nothing from the service at {server} for {silence_s:g} s (not even "
                           f"a keep-alive): the tail of {session_id} is lost") from None
    except (http.client.HTTPException, OSError) as exc:
        raise ServiceError(f"the service at {server} ended the tail of {session_id} "
                           f"({type(exc).__name__}): it stopped or restarted") from None
    raise ServiceError(f"the service at {server} ended the tail of {session_id}: it stopped or restarted")
