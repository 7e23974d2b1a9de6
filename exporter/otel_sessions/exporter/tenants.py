"""Tenants: who may send and read which sessions, read from the ``--tenants`` file at start-up.

The file is YAML or JSON (a ``.json`` name is read as JSON, any other as YAML), the same keys::

    tenants:
      - name: team-a                      # 1 to 64 of A-Z a-z 0-9 _ . -
        tokens:
          - sha256: 9f86d081...0f00a08      # 64 hex digits: SHA-256 of the token, never the token
            scopes: [ingest, read]          # ingest, read, admin, metrics
        quota: {spans_per_second: 5000, max_sessions: 100000}

Scopes: ``ingest`` sends OTLP (traces and logs), ``read`` looks up (REST, tail, gRPC
SessionService, Jaeger API, the web page's data), ``admin`` deletes sessions, ``metrics`` reads
``/metrics`` (every tenant's figures: an operator's scope). A scope grants nothing else.
``quota`` (optional, every key optional): ``spans_per_second`` and ``log_records_per_second``
(a rate over all receivers, bursts up to one second's worth), ``max_sessions`` (sessions kept
within the retention). Optional ``description`` strings are allowed on tenants and tokens.

A tenant named :data:`DEFAULT_TENANT` owns the keys of a service without tenants (the bare
``--key-prefix``), so a service moving from ``--ingest-token`` / ``--query-token`` to a
tenants file keeps its data; every other tenant's keys are under ``PREFIX:t.NAME``
(:func:`tenant_key_prefix`).

Every problem raises :class:`TenantsError` naming the file and the entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SCOPES", "DEFAULT_TENANT", "Quota", "TenantToken", "Tenant", "TenantsError", "load_tenants", "parse_tenants",
    "single_token_tenant", "token_sha256", "new_token", "tenant_key_prefix", "guessable_tokens",
]

#: Every scope a token may have.
SCOPES = ("ingest", "read", "admin", "metrics")
#: The tenant of a service without a tenants file (and of the single tokens).
DEFAULT_TENANT = "default"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_TENANT_KEYS = {"name", "tokens", "quota", "description"}
_TOKEN_KEYS = {"sha256", "scopes", "description"}
_QUOTA_KEYS = {"spans_per_second", "log_records_per_second", "max_sessions"}


class TenantsError(ValueError):
    """The tenants file cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Quota:
    """A tenant's limits; None: no limit. Rates are items per second over every receiver."""

    spans_per_second: float | None = None
    log_records_per_second: float | None = None
    max_sessions: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.spans_per_second, self.log_records_per_second, self.max_sessions))


@dataclass(frozen=True)
class TenantToken:
    """One token of a tenant: the SHA-256 digest of the token (32 bytes) and its scopes."""

    sha256: bytes = field(repr=False)
    scopes: frozenset[str]


@dataclass(frozen=True)
class Tenant:
    name: str
    tokens: tuple[TenantToken, ...]
    quota: Quota = Quota()


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a token (UTF-8), as the tenants file holds it."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A new random token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


#: Words people put in examples and tests: a token whose SHA-256 is one of theirs is guessable.
_GUESSABLE = ("test", "test1", "test2", "test3", "testing", "token", "secret", "password", "changeme", "admin",
              "default", "example", "demo", "1234", "12345", "123456", "qwerty", "letmein", "ingest", "read", "")


def guessable_tokens(tenants) -> list[tuple[str, str]]:
    """(tenant name, word) for each token of ``tenants`` that is the SHA-256 of a well-known word
    (``test``, ``secret``, ``changeme``..., as in examples): ``serve`` warns about them at start."""
    words = {hashlib.sha256(word.encode()).digest(): word for word in _GUESSABLE}
    return [(tenant.name, words[token.sha256]) for tenant in tenants for token in tenant.tokens
            if token.sha256 in words]


def tenant_key_prefix(key_prefix: str, tenant: str) -> str:
    """The Redis key prefix of ``tenant``'s namespace under ``--key-prefix``.

    :data:`DEFAULT_TENANT` keeps ``key_prefix`` itself; another tenant gets ``key_prefix:t.NAME``.
    Every key under the bare prefix continues ``{`` (a hash tag) or ``ready``/``quota:`` (``keys.py``),
    never ``t.``; and a name holds no ``:``, so no key of one tenant equals a key of another."""
    return key_prefix if tenant == DEFAULT_TENANT else f"{key_prefix}:t.{tenant}"


def single_token_tenant(ingest_token: str | None, query_token: str | None) -> Tenant | None:
    """The default tenant of ``--ingest-token`` (scope ``ingest``) and ``--query-token``
    (``read``, ``admin``, ``metrics``); one token given for both has every scope. None when
    neither is set."""
    scopes: dict[str, set[str]] = {}
    if ingest_token:
        scopes.setdefault(ingest_token, set()).add("ingest")
    if query_token:
        scopes.setdefault(query_token, set()).update(("read", "admin", "metrics"))
    if not scopes:
        return None
    tokens = tuple(TenantToken(hashlib.sha256(token.encode()).digest(), frozenset(granted))
                   for token, granted in scopes.items())
    return Tenant(DEFAULT_TENANT, tokens)


def load_tenants(path: str | Path) -> tuple[Tenant, ...]:
    """The tenants of the file at ``path`` (YAML, or JSON when the name ends ``.json``)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TenantsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TenantsError(f"{path}: not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TenantsError(f"{path}: not valid JSON: {exc}") from None
    else:
        try:
            import yaml
        except ImportError:  # the server extra has it
            raise TenantsError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or write the file "
                               "as JSON with a .json name") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TenantsError(f"{path}: not valid YAML: {exc}") from None
    return parse_tenants(data, str(path))


def _number(value: Any, where: str, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value <= 0 \
            or value == float("inf") or (integer and value != int(value)):
        raise TenantsError(f"{where}: must be a {'whole ' if integer else ''}number above 0 (got {value!r})")
    return int(value) if integer else float(value)


def _unknown(entry: dict, allowed: set[str], where: str) -> None:
    extra = sorted(str(k) for k in entry if k not in allowed)
    if extra:
        raise TenantsError(f"{where}: unknown key {extra[0]!r} (use {', '.join(sorted(allowed))})")


def parse_tenants(data: Any, source: str) -> tuple[Tenant, ...]:
    """Validate the file's parsed content; ``source`` names it in messages."""
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), list) or not data["tenants"]:
        raise TenantsError(f"{source}: expected a top-level 'tenants' list with at least one tenant")
    _unknown(data, {"tenants"}, source)
    tenants: list[Tenant] = []
    names: set[str] = set()
    digests: dict[bytes, str] = {}
    for i, entry in enumerate(data["tenants"]):
        where = f"{source}: tenants[{i}]"
        if not isinstance(entry, dict):
            raise TenantsError(f"{where}: expected a mapping with name and tokens")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise TenantsError(f"{where}: name {name!r} must be 1 to 64 letters, digits or _ . -")
        where = f"{source}: tenant {name!r}"
        _unknown(entry, _TENANT_KEYS, where)
        if name in names:
            raise TenantsError(f"{where}: the name is used twice")
        names.add(name)
        raw_tokens = entry.get("tokens")
        if not isinstance(raw_tokens, list) or not raw_tokens:
            raise TenantsError(f"{where}: expected a 'tokens' list with at least one token")
        tokens = []
        for j, raw in enumerate(raw_tokens):
            token_where = f"{where}: tokens[{j}]"
            if not isinstance(raw, dict):
                raise TenantsError(f"{token_where}: expected a mapping with sha256 and scopes")
            _unknown(raw, _TOKEN_KEYS, token_where)
            hex_digest = raw.get("sha256")
            if not isinstance(hex_digest, str) or not _HEX64.fullmatch(hex_digest.strip()):
                raise TenantsError(f"{token_where}: sha256 must be 64 hex digits, the SHA-256 of the token "
                                   "(otel-sessions tokens new prints one)")
            digest = bytes.fromhex(hex_digest.strip())
            if digest in digests:
                raise TenantsError(f"{token_where}: this sha256 is listed already (tenant {digests[digest]!r}); "
                                   "a token belongs to one tenant")
            digests[digest] = name
            scopes = raw.get("scopes")
            if isinstance(scopes, str):
                scopes = [s.strip() for s in scopes.split(",")]
            if not isinstance(scopes, list) or not scopes:
                raise TenantsError(f"{token_where}: expected 'scopes', a list of {', '.join(SCOPES)}")
            for scope in scopes:
                if scope not in SCOPES:
                    raise TenantsError(f"{token_where}: unknown scope {scope!r} (use {', '.join(SCOPES)})")
            tokens.append(TenantToken(digest, frozenset(scopes)))
        quota = entry.get("quota") or {}
        if not isinstance(quota, dict):
            raise TenantsError(f"{where}: quota must be a mapping such as {{spans_per_second: 5000}}")
        _unknown(quota, _QUOTA_KEYS, f"{where}: quota")
        limits = {key: _number(quota[key], f"{where}: quota.{key}", key == "max_sessions")
                  for key in _QUOTA_KEYS if quota.get(key) is not None}
        tenants.append(Tenant(name, tuple(tokens), Quota(**limits)))
    return tuple(tenants)
