"""Tokens from files and env vars, the Host and CORS settings, and the start-up warnings:
resolved and validated in ``Settings``, and as ``serve`` prints them."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from otel_sessions.exporter.serve.exposure import is_loopback, start_warnings
from otel_sessions.exporter.serve.settings import Settings, SettingsError
from tests.serve.test_serve_command import SERVE


def resolve(args=None, env=None) -> Settings:
    return Settings.resolve({"grpc_listen": "127.0.0.1:0", "http_listen": "127.0.0.1:0", **(args or {})}, env=env or {})


def test_a_token_file_is_read_and_stripped(tmp_path):
    (tmp_path / "q").write_text("\n  tok-q \n")
    (tmp_path / "i").write_bytes(b"tok-i\r\n")
    s = resolve({"query_token_file": str(tmp_path / "q")},
                env={"OTEL_SESSIONS_INGEST_TOKEN_FILE": str(tmp_path / "i")})
    assert (s.query_token, s.ingest_token) == ("tok-q", "tok-i")
    assert s.query_token_file == tmp_path / "q" and s.tokens_on_command_line == ()
    assert "tok-q" not in repr(s) and "tok-i" not in repr(s)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "no such file"), ("", "is empty"), (" \n\t\n", "is empty"), ("dir", "cannot read"),
    ("one\ntwo\n", "more than one token"), (b"\xff\xfe", "cannot read"),
])
def test_a_bad_token_file_stops_start_up(tmp_path, content, problem):
    path = tmp_path / "token"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    for how in ("flag", "env"):
        args, env = ({"ingest_token_file": str(path)}, {}) if how == "flag" else \
            ({}, {"OTEL_SESSIONS_INGEST_TOKEN_FILE": str(path)})
        with pytest.raises(SettingsError) as error:
            resolve(args, env)
        message = str(error.value)
        assert message.startswith("--ingest-token-file / OTEL_SESSIONS_INGEST_TOKEN_FILE: ") and problem in message


def test_a_flag_wins_over_the_env_vars_and_both_spellings_at_once_are_an_error(tmp_path):
    (tmp_path / "t").write_text("from-file")
    file = str(tmp_path / "t")
    assert resolve({"query_token": "from-flag"}, {"OTEL_SESSIONS_QUERY_TOKEN_FILE": file}).query_token == "from-flag"
    assert resolve({"query_token_file": file}, {"OTEL_SESSIONS_QUERY_TOKEN": "from-env"}).query_token == "from-file"
    assert resolve({}, {"OTEL_SESSIONS_QUERY_TOKEN": "from-env"}).query_token == "from-env"
    with pytest.raises(SettingsError, match="--query-token and --query-token-file are both set"):
        resolve({"query_token": "a", "query_token_file": file})
    with pytest.raises(SettingsError, match="OTEL_SESSIONS_QUERY_TOKEN and OTEL_SESSIONS_QUERY_TOKEN_FILE are both"):
        resolve({}, {"OTEL_SESSIONS_QUERY_TOKEN": "a", "OTEL_SESSIONS_QUERY_TOKEN_FILE": file})


def test_hosts_and_origins_are_checked_and_normalised():
    s = resolve({"allowed_hosts": "Sessions.Example.com., *.corp.example,10.0.0.5,[FD00::1]",
                 "cors_origins": "https://App.example.com:443/,http://localhost:3000"})
    assert s.allowed_hosts == ("sessions.example.com", "*.corp.example", "10.0.0.5", "fd00::1")
    assert s.cors_origins == ("https://app.example.com", "http://localhost:3000")
    for bad in ("example.com:8080", "http://example.com", "*", "a b", "[zz]"):
        with pytest.raises(SettingsError, match="^--allowed-hosts / OTEL_SESSIONS_ALLOWED_HOSTS: "):
            resolve({"allowed_hosts": bad})
    for bad in ("app.example.com", "https://app.example.com/page", "*", "ftp://x.example"):
        with pytest.raises(SettingsError, match="^--cors-origins / OTEL_SESSIONS_CORS_ORIGINS: "):
            resolve({}, {"OTEL_SESSIONS_CORS_ORIGINS": bad})


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True),
                                                ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                                ("::", False), ("10.0.0.5", False), ("example.com", False)])
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_start_warnings():
    assert start_warnings(resolve()) == []
    both = {"OTEL_SESSIONS_QUERY_TOKEN": "env-secret", "OTEL_SESSIONS_INGEST_TOKEN": "env-other"}
    assert start_warnings(resolve({}, both)) == []
    (warning,) = start_warnings(resolve({"query_token": "flag-secret"}, {"OTEL_SESSIONS_INGEST_TOKEN": "x"}))
    assert "--query-token puts the token on the command line" in warning and "--query-token-file" in warning
    assert "flag-secret" not in warning
    (warning,) = start_warnings(resolve({"http_listen": "0.0.0.0:4318"}))
    assert "0.0.0.0:4318" in warning and "no token" in warning
    # one token is enough to be told nothing about the address, but the other kind's routes refuse everyone
    (warning,) = start_warnings(resolve({"grpc_listen": "0.0.0.0:4317"}, {"OTEL_SESSIONS_INGEST_TOKEN": "x"}))
    assert warning.startswith("only the ingest token is set") and "lookups" in warning and "401" in warning
    (warning,) = start_warnings(resolve({}, {"OTEL_SESSIONS_QUERY_TOKEN": "x"}))
    assert warning.startswith("only the query token is set") and "OTLP ingest answers 401" in warning


def test_a_guessable_tenant_token_is_warned_about(tmp_path):
    import hashlib

    path = tmp_path / "tenants.yaml"
    path.write_text("tenants:\n  - name: team-a\n    tokens:\n"
                    f"      - sha256: {hashlib.sha256(b'test').hexdigest()}\n        scopes: [read]\n")
    (warning,) = start_warnings(resolve({"tenants": str(path)}))
    assert "team-a" in warning and "'test'" in warning and "tokens new" in warning


def _serve_output(tmp_path, *args: str, env: dict[str, str] | None = None, while_ready=None) -> str:
    """Everything ``serve`` prints from start to a clean stop; ``while_ready(http_url)`` runs
    once it is ready."""
    process = subprocess.Popen([*SERVE, "--data-dir", str(tmp_path), "--grpc-listen", "127.0.0.1:0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.strip().endswith("ready"):
                break
        if while_ready is not None:
            (url,) = {m.group(1) for line in lines for m in [re.search(r"OTLP/HTTP on (http://[\d.]+:\d+)", line)] if m}
            while_ready(url)
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, "".join(lines) + rest
    return "".join(lines) + rest


def test_serve_prints_the_warnings_without_the_token(tmp_path, redis_url):
    out = _serve_output(tmp_path, "--redis-url", redis_url, "--http-listen", "127.0.0.1:0",
                        "--query-token", "flag-secret-93d1", env={"OTEL_SESSIONS_INGEST_TOKEN": "env-secret-5c2e"})
    assert "otel-sessions: warning: --query-token puts the token on the command line" in out
    assert "flag-secret-93d1" not in out and "env-secret-5c2e" not in out
    assert "listening beyond loopback" not in out
    out = _serve_output(tmp_path, "--redis-url", redis_url, "--http-listen", "0.0.0.0:0")
    assert "otel-sessions: warning: listening beyond loopback (0.0.0.0:0) with no token" in out
    assert "puts the token" not in out


def test_serve_stops_on_a_missing_token_file(tmp_path):
    result = subprocess.run([*SERVE, "--query-token-file", str(tmp_path / "absent")], capture_output=True,
                            text=True, timeout=30, env={**os.environ})
    assert result.returncode == 2
    assert f"--query-token-file / OTEL_SESSIONS_QUERY_TOKEN_FILE: no such file: {tmp_path / 'absent'}" in result.stdout


def test_no_token_in_the_output_of_a_run_with_refusals(tmp_path, redis_url):
    """``serve`` at debug level, tokens from a file and an env var, then requests without a
    token, with wrong ones, with the right ones and a deletion: nothing it prints holds a token."""
    import urllib.error
    import urllib.request

    (tmp_path / "q").write_text("query-file-secret-41f7\n")
    secrets = ("query-file-secret-41f7", "ingest-env-secret-8a02", "wrong-secret-13c5")

    def traffic(url: str) -> None:
        for path, method, token in (("/v1/sessions", "GET", None), ("/v1/sessions", "GET", "wrong-secret-13c5"),
                                    ("/v1/sessions", "GET", "query-file-secret-41f7"),
                                    ("/v1/traces", "POST", "wrong-secret-13c5"),
                                    ("/api/services", "GET", "wrong-secret-13c5"),
                                    ("/v1/sessions/none", "DELETE", "query-file-secret-41f7")):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            if method == "POST":
                headers["Content-Type"] = "application/json"
            request = urllib.request.Request(url + path, method=method, headers=headers,
                                             data=b"{}" if method == "POST" else None)
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except urllib.error.HTTPError as exc:
                assert exc.code in (401, 404), (path, exc.code)

    out = _serve_output(tmp_path, "--redis-url", redis_url, "--http-listen", "127.0.0.1:0", "--log-level", "debug",
                        "--query-token-file", str(tmp_path / "q"),
                        env={"OTEL_SESSIONS_INGEST_TOKEN": "ingest-env-secret-8a02"}, while_ready=traffic)
    # four refusals, the second GET /v1/sessions within REPEAT_S of the first: one line for both
    assert out.count("audit: refused status=401") == 3, out
    for secret in secrets:
        assert secret not in out, secret
