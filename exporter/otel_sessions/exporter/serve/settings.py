"""Service settings: resolved in one place (flag, then env var, then default) and validated.

A bad value raises :class:`SettingsError` whose message names both the flag and the env
var, so ``serve`` can stop at start-up with a sentence the operator can act on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otel_sessions.exporter.auth import Access
from otel_sessions.exporter.forward.forwarding import ForwardSettings
from otel_sessions.exporter.ingest.redaction import Redactor
from otel_sessions.exporter.serve.setting_values import (
    AUTO_WORKERS_MAX,
    auto_workers,
    comma_list,
    default_data_dir,
    host_pattern,
    origin,
    parse_duration,
    parse_listen,
    read_token_file,
    redact_url,
)
from otel_sessions.exporter.store.sessions import StoreSettings
from otel_sessions.exporter.tenants import (
    DEFAULT_TENANT,
    Tenant,
    TenantsError,
    load_tenants,
    single_token_tenant,
)

__all__ = ["Settings", "SettingsError", "parse_duration", "parse_listen", "default_data_dir", "auto_workers",
           "AUTO_WORKERS_MAX", "OPTIONS"]


class SettingsError(ValueError):
    """A setting has an impossible value; the message names the flag and the env var."""


@dataclass(frozen=True)
class Option:
    """One setting: its attribute name, flag, env var, default and help text. A repeatable
    option's flag is given once per value; its env var holds the values split by ``separator``."""

    name: str
    flag: str
    env: str
    default: Any
    help: str
    repeatable: bool = False
    metavar: str | None = None  # the value's name in --help (None: the flag's name in capitals)
    separator: str = ","


OPTIONS: tuple[Option, ...] = (
    Option("redis_url", "--redis-url", "OTEL_SESSIONS_REDIS_URL", None,
           "Redis to store sessions in (redis://, rediss://, unix://). Default: start an embedded "
           "redis-server with its data under --data-dir."),
    Option("redis_cluster", "--redis-cluster", "OTEL_SESSIONS_REDIS_CLUSTER", False,
           "Treat --redis-url as a Redis Cluster seed node."),
    Option("redis_timeout", "--redis-timeout", "OTEL_SESSIONS_REDIS_TIMEOUT", "5s",
           "Longest wait for a Redis reply; a request that waits longer is answered as retryable "
           "(UNAVAILABLE / 503)."),
    Option("data_dir", "--data-dir", "OTEL_SESSIONS_DATA_DIR", None,
           "Folder of the embedded Redis (append-only file). Default: $XDG_DATA_HOME/otel-sessions, "
           "else ~/.local/share/otel-sessions."),
    Option("grpc_listen", "--grpc-listen", "OTEL_SESSIONS_GRPC_LISTEN", "127.0.0.1:4317",
           "OTLP/gRPC and SessionService address."),
    Option("http_listen", "--http-listen", "OTEL_SESSIONS_HTTP_LISTEN", "127.0.0.1:4318",
           "OTLP/HTTP, REST, health and metrics address."),
    Option("forward", "--forward", "OTEL_SESSIONS_FORWARD", (),
           "Forward every span to this OTLP endpoint (grpc://host:4317 or http://host:4318); "
           "repeatable, or comma-separated in the env var.", repeatable=True, metavar="URL"),
    Option("forward_queue", "--forward-queue", "OTEL_SESSIONS_FORWARD_QUEUE", 20_000,
           "Spans waiting per --forward destination; beyond it new batches are dropped and counted."),
    Option("forward_retry_max", "--forward-retry-max", "OTEL_SESSIONS_FORWARD_RETRY_MAX", "5m",
           "Longest time a batch is retried (with backoff) before a --forward destination drops it."),
    Option("forward_timeout", "--forward-timeout", "OTEL_SESSIONS_FORWARD_TIMEOUT", "10s",
           "Timeout of one export request to a --forward destination."),
    Option("forward_join_wait", "--forward-join-wait", "OTEL_SESSIONS_FORWARD_JOIN_WAIT", "5s",
           "Longest time forwarding holds spans (and log requests) whose trace has named no session yet, "
           "so they go on with their session.id once it does; 0 turns holding off."),
    Option("forward_join_max_spans", "--forward-join-max-spans", "OTEL_SESSIONS_FORWARD_JOIN_MAX_SPANS", 20_000,
           "Most spans (and, apart, log records) held for --forward-join-wait at once; beyond it they are "
           "forwarded as they are."),
    Option("retention", "--retention", "OTEL_SESSIONS_RETENTION", "24h",
           "Sliding TTL of every key of a session; receivers sharing a Redis use the same value."),
    Option("thread_idle", "--thread-idle", "OTEL_SESSIONS_THREAD_IDLE", "1h",
           "A thread with no activity for this long expires (its sessions stay)."),
    Option("idle_after", "--idle-after", "OTEL_SESSIONS_IDLE_AFTER", "5m",
           "A session with no new span or log record for this long is idle."),
    Option("abandon_after", "--abandon-after", "OTEL_SESSIONS_ABANDON_AFTER", "30m",
           "A session with no new span or log record for this long is abandoned."),
    Option("key_prefix", "--key-prefix", "OTEL_SESSIONS_KEY_PREFIX", "ots",
           "Prefix of every Redis key."),
    Option("tenants", "--tenants", "OTEL_SESSIONS_TENANTS", None,
           "Path of the tenants file (YAML, or JSON with a .json name): tenants, the SHA-256 of their tokens "
           "with scopes (ingest, read, admin, metrics) and quotas. Each tenant's data is apart from the others'; "
           "every route but /healthz and /readyz needs a token of the right scope. 'otel-sessions tokens new' "
           "makes a token. SIGHUP reads the file again.", metavar="FILE"),
    Option("metrics_public", "--metrics-public", "OTEL_SESSIONS_METRICS_PUBLIC", False,
           "Serve /metrics without a token even when tokens are set (for a Prometheus that cannot send one); "
           "its figures, per tenant too, are then open to anyone who reaches the HTTP port."),
    Option("ingest_token", "--ingest-token", "OTEL_SESSIONS_INGEST_TOKEN", None,
           "A single token with the ingest scope (OTLP requests need 'Authorization: Bearer <token>'). Once any "
           "token is set, every route needs a token of its scope. Not with --tenants. A flag shows in the process "
           "list: prefer the env var or --ingest-token-file."),
    Option("query_token", "--query-token", "OTEL_SESSIONS_QUERY_TOKEN", None,
           "A single token with the read, admin (delete) and metrics scopes (lookups need "
           "'Authorization: Bearer <token>'). Once any token is set, every route needs a token of its scope. "
           "Not with --tenants. A flag shows in the process list: prefer the env var or --query-token-file."),
    Option("ingest_token_file", "--ingest-token-file", "OTEL_SESSIONS_INGEST_TOKEN_FILE", None,
           "File holding the ingest token (its content stripped of surrounding whitespace): keeps the token "
           "out of the process list. Not together with --ingest-token; a flag wins over the env vars.",
           metavar="PATH"),
    Option("query_token_file", "--query-token-file", "OTEL_SESSIONS_QUERY_TOKEN_FILE", None,
           "File holding the query token, as --ingest-token-file.", metavar="PATH"),
    Option("allowed_hosts", "--allowed-hosts", "OTEL_SESSIONS_ALLOWED_HOSTS", None,
           "Comma-separated host names the HTTP port answers besides localhost, 127.0.0.1 and [::1] "
           "(e.g. sessions.example.com,*.internal.example.com); any other Host header gets 421. Checked "
           "always when --http-listen is a loopback address (against DNS rebinding), elsewhere only when set.",
           metavar="HOSTS"),
    Option("cors_origins", "--cors-origins", "OTEL_SESSIONS_CORS_ORIGINS", None,
           "Comma-separated origins (https://app.example.com) whose browser pages may call the HTTP port "
           "(OTLP/HTTP export and lookups, with Content-Type and Authorization headers); others get no "
           "CORS headers. Default: CORS off.", metavar="ORIGINS"),
    Option("max_request_bytes", "--max-request-bytes", "OTEL_SESSIONS_MAX_REQUEST_BYTES", 64 * 1024 * 1024,
           "Largest OTLP request accepted, compressed or not (gRPC message size too)."),
    Option("max_inflight_bytes", "--max-inflight-bytes", "OTEL_SESSIONS_MAX_INFLIGHT_BYTES", "2x",
           "Most OTLP request bytes one process holds at once, both transports together (bodies being read, "
           "decoded or stored); beyond it requests get 503 / UNAVAILABLE with a retry delay. A byte count, or "
           "a multiple of --max-request-bytes such as 2x (128 MiB with the default); at least --max-request-bytes."),
    Option("body_timeout", "--body-timeout", "OTEL_SESSIONS_BODY_TIMEOUT", "60s",
           "Longest time to receive one OTLP/HTTP request body; a slower client gets 408 and its connection is closed."),
    Option("connection_idle_timeout", "--connection-idle-timeout", "OTEL_SESSIONS_CONNECTION_IDLE_TIMEOUT", "60s",
           "An HTTP connection that has not sent a whole request head this long after it opened or after its "
           "last answer (idle keep-alive, or headers sent too slowly) is closed; so is a gRPC connection with "
           "no call for this long."),
    Option("max_spans_per_session", "--max-spans-per-session", "OTEL_SESSIONS_MAX_SPANS_PER_SESSION", 100_000,
           "Spans kept per session; beyond it the oldest are dropped from the store."),
    Option("max_logs_per_session", "--max-logs-per-session", "OTEL_SESSIONS_MAX_LOGS_PER_SESSION", 100_000,
           "Log records kept per session; beyond it the oldest are dropped from the store."),
    Option("max_id_length", "--max-id-length", "OTEL_SESSIONS_MAX_ID_LENGTH", 256,
           "Longest session, thread or user id used for grouping."),
    Option("prices", "--prices", "OTEL_SESSIONS_PRICES", None,
           "Path of a JSON file of model prices, USD per million tokens "
           "({\"my-model\": {\"input\": 3.0, \"output\": 12.0, \"cache_read\": 0.3}}), extending the built-in "
           "table; a model is priced by its exact name or a dated snapshot of it, never by prefix."),
    Option("workers", "--workers", "OTEL_SESSIONS_WORKERS", "auto",
           "Server processes sharing the ports (SO_REUSEPORT), or auto: one per usable core (at most 8) when "
           "both ports are fixed, 1 when either is 0 (a port picked by the system cannot be shared)."),
    Option("log_level", "--log-level", "OTEL_SESSIONS_LOG_LEVEL", "info",
           "debug, info, warning or error."),
    Option("redact_attributes", "--redact-attributes", "OTEL_SESSIONS_REDACT_ATTRIBUTES", (),
           "Attribute keys whose values are replaced by [redacted] before anything is stored or forwarded: "
           "comma-separated glob patterns (e.g. gen_ai.input.messages,llm.input_messages.*); repeatable.",
           repeatable=True, metavar="GLOBS"),
    Option("redact_patterns", "--redact-patterns", "OTEL_SESSIONS_REDACT_PATTERNS", (),
           "A regular expression whose matches inside string attribute values and log bodies are replaced "
           "by [redacted] before anything is stored or forwarded (e.g. an e-mail address); repeatable, one "
           "regex per flag, one per line in the env var.", repeatable=True, metavar="REGEX", separator="\n"),
)
_BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """The resolved, validated settings of one ``serve`` process (durations in seconds).

    Defaults live in :data:`OPTIONS` only: build one with :meth:`resolve`. Components take
    the typed slice they need (:meth:`store_settings`, :meth:`forward_settings`)."""

    redis_url: str | None
    redis_cluster: bool
    metrics_public: bool
    redis_timeout: float
    data_dir: Path
    grpc_listen: tuple[str, int]
    http_listen: tuple[str, int]
    forward: tuple[str, ...]
    forward_queue: int
    forward_retry_max: float
    forward_timeout: float
    forward_join_wait: float
    forward_join_max_spans: int
    retention: float
    thread_idle: float
    idle_after: float
    abandon_after: float
    key_prefix: str
    tenants: tuple[Tenant, ...]  # of the --tenants file, else the default tenant of the single tokens, else ()
    tenants_file: Path | None  # the --tenants file, read again on SIGHUP
    ingest_token: str | None = field(repr=False)
    query_token: str | None = field(repr=False)
    max_request_bytes: int
    max_inflight_bytes: int
    body_timeout: float
    connection_idle_timeout: float
    max_spans_per_session: int
    max_logs_per_session: int
    max_id_length: int
    prices: Path | None
    workers: int
    log_level: str
    redact_attributes: tuple[str, ...] = ()
    redact_patterns: tuple[str, ...] = ()
    ingest_token_file: Path | None = None
    query_token_file: Path | None = None
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    #: the flags that put a token on the command line (``--ingest-token``), for the start-up warning
    tokens_on_command_line: tuple[str, ...] = ()

    def store_settings(self) -> StoreSettings:
        return StoreSettings(key_prefix=self.key_prefix, retention_s=self.retention, thread_idle_s=self.thread_idle,
                             idle_after_s=self.idle_after, abandon_after_s=self.abandon_after,
                             max_spans_per_session=self.max_spans_per_session,
                             max_logs_per_session=self.max_logs_per_session)

    def access(self) -> Access:
        """Who may do what: the tenants' tokens (none configured: an open service)."""
        return Access(self.tenants)

    def redactor(self) -> Redactor | None:
        """The ingest redactor, None when no redaction is configured (no cost then)."""
        if not self.redact_attributes and not self.redact_patterns:
            return None
        return Redactor(self.redact_attributes, self.redact_patterns)

    def forward_settings(self) -> ForwardSettings:
        return ForwardSettings(urls=self.forward, max_queued_spans=self.forward_queue,
                               retry_max_s=self.forward_retry_max, timeout_s=self.forward_timeout,
                               join_wait_s=self.forward_join_wait, join_max_spans=self.forward_join_max_spans)

    @classmethod
    def resolve(cls, args: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Resolve every option: ``args[name]`` when not None, else the env var, else the default."""
        args = dict(args or {})
        env = os.environ if env is None else env
        raw: dict[str, Any] = {}
        sources: dict[str, str] = {}  # option name -> "flag", "env" or "default"
        for option in OPTIONS:
            value = args.get(option.name)
            sources[option.name] = "flag"
            if value in (None, [], ()):
                env_value = env.get(option.env)
                sources[option.name] = "env"
                if env_value not in (None, ""):
                    value = ([v.strip() for v in env_value.split(option.separator) if v.strip()]
                             if option.repeatable else env_value)
                else:
                    value = option.default
                    sources[option.name] = "default"
            raw[option.name] = value
        return cls._validated(raw, sources)

    @classmethod
    def _validated(cls, raw: dict[str, Any], sources: Mapping[str, str] | None = None) -> Settings:
        values: dict[str, Any] = {}
        sources = sources or {}

        def fail(name: str, problem: str) -> SettingsError:
            option = _BY_NAME[name]
            return SettingsError(f"{option.flag} / {option.env}: {problem}")

        for name in ("redis_timeout", "retention", "thread_idle", "idle_after", "abandon_after",
                     "forward_retry_max", "forward_timeout", "body_timeout", "connection_idle_timeout"):
            try:
                seconds = parse_duration(raw[name])
            except ValueError as exc:
                raise fail(name, str(exc)) from None
            if seconds <= 0:
                raise fail(name, "must be greater than zero")
            values[name] = seconds
        try:
            values["forward_join_wait"] = parse_duration(raw["forward_join_wait"])
        except ValueError as exc:
            raise fail("forward_join_wait", f"{exc}; 0 turns it off") from None
        if values["forward_join_wait"] > 3600:
            raise fail("forward_join_wait", "must be at most 1h")
        if values["abandon_after"] < values["idle_after"]:
            raise fail("abandon_after", "must not be shorter than --idle-after")

        for name in ("grpc_listen", "http_listen"):
            try:
                values[name] = parse_listen(raw[name])
            except ValueError as exc:
                raise fail(name, str(exc)) from None

        for name, low in (("max_request_bytes", 1024), ("max_spans_per_session", 1),
                          ("max_logs_per_session", 1), ("max_id_length", 1),
                          ("forward_queue", 1), ("forward_join_max_spans", 1)):
            try:
                number = int(raw[name])
            except (TypeError, ValueError):
                raise fail(name, f"not a whole number: {raw[name]!r}") from None
            if number < low:
                raise fail(name, f"must be at least {low}")
            values[name] = number

        if str(raw["workers"]).strip().lower() == "auto":
            values["workers"] = auto_workers(values["grpc_listen"][1], values["http_listen"][1])
        else:
            try:
                values["workers"] = int(raw["workers"])
            except (TypeError, ValueError):
                raise fail("workers", f"not a whole number nor auto: {raw['workers']!r}") from None
            if values["workers"] < 1:
                raise fail("workers", "must be at least 1")

        inflight = str(raw["max_inflight_bytes"]).strip().lower()
        try:
            if inflight.endswith("x"):
                values["max_inflight_bytes"] = round(float(inflight[:-1]) * values["max_request_bytes"])
            else:
                values["max_inflight_bytes"] = int(inflight)
        except ValueError:
            raise fail("max_inflight_bytes",
                       f"not a whole number of bytes nor a multiple such as 2x: {raw['max_inflight_bytes']!r}") from None
        if values["max_inflight_bytes"] < values["max_request_bytes"]:
            raise fail("max_inflight_bytes", f"must be at least --max-request-bytes ({values['max_request_bytes']}), "
                       "or a request of the largest size could never be taken")

        url = raw["redis_url"]
        if url is not None and not re.match(r"^(redis|rediss|unix)://", str(url)):
            raise fail("redis_url", f"must start with redis://, rediss:// or unix:// (got {redact_url(url)!r})")
        values["redis_url"] = url
        cluster = raw["redis_cluster"]
        values["redis_cluster"] = cluster if isinstance(cluster, bool) else str(cluster).lower() in ("1", "true", "yes")
        public = raw["metrics_public"]
        values["metrics_public"] = public if isinstance(public, bool) else str(public).lower() in ("1", "true", "yes")
        if values["redis_cluster"] and url is None:
            raise fail("redis_cluster", "needs --redis-url (the embedded Redis is not a cluster)")

        values["data_dir"] = (Path(raw["data_dir"]).expanduser().absolute() if raw["data_dir"]
                              else default_data_dir())

        forward = raw["forward"]
        forward = (forward,) if isinstance(forward, str) else tuple(forward)
        for target in forward:
            if not re.match(r"^(grpc|http|https)://[^/\s]+", target):
                raise fail("forward", f"must look like grpc://host:4317 or http://host:4318 (got {target!r})")
        values["forward"] = forward

        prefix = str(raw["key_prefix"])
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", prefix):
            raise fail("key_prefix", "use 1 to 64 letters, digits or _ . : - (no braces)")
        values["key_prefix"] = prefix

        on_command_line = []
        for name in ("ingest_token", "query_token"):
            try:
                values[name], values[f"{name}_file"], source = _token(name, raw, sources)
            except SettingsError as exc:
                raise fail(f"{name}_file", str(exc)) from None
            if source == "flag" and values[name] is not None and values[f"{name}_file"] is None:
                on_command_line.append(_BY_NAME[name].flag)
        values["tokens_on_command_line"] = tuple(on_command_line)
        if raw["tenants"]:
            for name in ("ingest_token", "query_token"):
                if values[name]:
                    raise fail(name, "not with --tenants / OTEL_SESSIONS_TENANTS: give the token to a tenant of "
                               f"the file instead (a tenant named {DEFAULT_TENANT!r} keeps the data stored so far)")
            try:
                values["tenants"] = load_tenants(raw["tenants"])
                values["tenants_file"] = Path(raw["tenants"]).expanduser().absolute()
            except TenantsError as exc:
                raise fail("tenants", str(exc)) from None
        else:
            single = single_token_tenant(values["ingest_token"], values["query_token"])
            values["tenants"] = (single,) if single is not None else ()
            values["tenants_file"] = None

        try:
            values["allowed_hosts"] = tuple(host_pattern(h) for h in comma_list(raw["allowed_hosts"]))
        except ValueError as exc:
            raise fail("allowed_hosts", str(exc)) from None
        try:
            values["cors_origins"] = tuple(origin(o) for o in comma_list(raw["cors_origins"]))
        except ValueError as exc:
            raise fail("cors_origins", str(exc)) from None

        values["prices"] = Path(raw["prices"]).expanduser() if raw["prices"] else None
        if values["prices"] is not None and not values["prices"].is_file():
            raise fail("prices", f"no such file: {values['prices']}")

        globs = raw["redact_attributes"]
        globs = (globs,) if isinstance(globs, str) else tuple(globs)
        values["redact_attributes"] = tuple(g.strip() for item in globs for g in str(item).split(",") if g.strip())
        patterns = raw["redact_patterns"]
        patterns = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        values["redact_patterns"] = tuple(str(p) for p in patterns if str(p))
        for pattern in values["redact_patterns"]:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise fail("redact_patterns", f"not a regular expression: {pattern!r} ({exc})") from None
            if compiled.fullmatch(""):
                raise fail("redact_patterns", f"{pattern!r} matches the empty string (it would redact everything)")

        level = str(raw["log_level"]).lower()
        if level not in ("debug", "info", "warning", "error"):
            raise fail("log_level", "use debug, info, warning or error")
        values["log_level"] = level
        return cls(**values)

    @property
    def redacted_redis_url(self) -> str | None:
        return redact_url(self.redis_url) if self.redis_url else None


def _token(name: str, raw: Mapping[str, Any], sources: Mapping[str, str]) -> tuple[str | None, Path | None, str]:
    """``(token, file it was read from, "flag" | "env" | "default")`` of ``ingest_token`` or
    ``query_token``: the token and its file are one setting, so a flag (either spelling) wins over
    the env vars (either spelling), and both spellings at one level are an error. Raises
    :class:`SettingsError` for both at once, and for a file that is missing, unreadable, not
    UTF-8 or empty (after stripping surrounding whitespace)."""
    file_name = f"{name}_file"
    token, path = raw[name] or None, raw[file_name] or None
    token_source, file_source = sources.get(name, "flag"), sources.get(file_name, "flag")
    if token is not None and path is not None:
        if token_source == file_source:
            token_opt, file_opt = _BY_NAME[name], _BY_NAME[file_name]
            both = (f"{token_opt.flag} and {file_opt.flag}" if token_source == "flag"
                    else f"{token_opt.env} and {file_opt.env}")
            raise SettingsError(f"{both} are both set: give the token one way")
        if token_source == "flag":
            path = None
        else:
            token = None
    if path is None:
        return (str(token) if token is not None else None), None, token_source
    path = Path(str(path)).expanduser()
    try:
        return read_token_file(path), path, file_source
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
