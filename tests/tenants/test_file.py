"""The tenants file: the issue's example as written, JSON alike, every mistake stopping start-up
with the file and the entry named; tokens made by ``otel-sessions tokens new``; the single
tokens as one default tenant; the access rules (401, 403, constant-time comparison)."""

from __future__ import annotations

import hashlib
import json

import pytest

from otel_sessions.exporter.auth import Access
from otel_sessions.exporter.errors import PermissionDenied, Unauthenticated
from otel_sessions.exporter.serve.settings import Settings, SettingsError
from otel_sessions.exporter.tenants import (
    DEFAULT_TENANT,
    Quota,
    TenantsError,
    guessable_tokens,
    load_tenants,
    parse_tenants,
    single_token_tenant,
    tenant_key_prefix,
)
from tests.support import cli

ISSUE_EXAMPLE = """\
tenants:
  - name: team-a
    tokens:
      - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08   # hex SHA-256 of the token
        scopes: [ingest, read]
      - sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
        scopes: [admin]
    quota: {spans_per_second: 5000, max_sessions: 100000}
"""


def test_the_issue_example_works_as_written(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(ISSUE_EXAMPLE)
    (tenant,) = load_tenants(path)
    assert tenant.name == "team-a"
    assert tenant.quota == Quota(spans_per_second=5000, max_sessions=100_000)
    assert [sorted(t.scopes) for t in tenant.tokens] == [["ingest", "read"], ["admin"]]
    access = Access([tenant])
    # 9f86d0... is the SHA-256 of "test", 60303a... of "test2"
    assert access.require("Bearer test", "read").tenant == "team-a"
    assert access.require("bearer test2", "admin").tenant == "team-a"
    with pytest.raises(PermissionDenied):
        access.require("Bearer test", "admin")
    for header in (None, "", "Bearer", "Bearer wrong", "Basic test", "test"):
        with pytest.raises(Unauthenticated):
            access.require(header, "read")


def test_json_with_the_same_keys(tmp_path):
    import yaml

    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(yaml.safe_load(ISSUE_EXAMPLE)))
    assert load_tenants(path) == load_tenants(_write(tmp_path, ISSUE_EXAMPLE))


def _write(tmp_path, text: str, name: str = "t.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


H1, H2 = "a" * 64, "b" * 64


@pytest.mark.parametrize(("text", "message"), [
    ("tenants: []", "at least one tenant"),
    ("other: 1", "top-level 'tenants' list"),
    (f"tenants: [{{name: 'bad name', tokens: [{{sha256: {H1}, scopes: [read]}}]}}]", "tenants[0]: name 'bad name'"),
    (f"tenants: [{{name: {'x' * 65}, tokens: [{{sha256: {H1}, scopes: [read]}}]}}]", "1 to 64"),
    (f"tenants: [{{name: a, tokens: [{{sha256: {H1}, scopes: [read]}}]}}, {{name: a, tokens: [{{sha256: {H2}, scopes: [read]}}]}}]",
     "tenant 'a': the name is used twice"),
    (f"tenants: [{{name: a, tokens: [{{sha256: {H1}, scopes: [reed]}}]}}]", "tenant 'a': tokens[0]: unknown scope 'reed'"),
    ("tenants: [{name: a, tokens: [{sha256: 12ab, scopes: [read]}]}]", "tenant 'a': tokens[0]: sha256 must be 64 hex"),
    (f"tenants: [{{name: a, tokens: [{{sha256: {'g' * 64}, scopes: [read]}}]}}]", "64 hex digits"),
    (f"tenants: [{{name: a, tokens: [{{sha256: {H1}, scopes: [read]}}]}}, {{name: b, tokens: [{{sha256: {H1}, scopes: [read]}}]}}]",
     "tenant 'b': tokens[0]: this sha256 is listed already (tenant 'a')"),
    ("tenants: [{name: a, tokens: []}]", "tenant 'a': expected a 'tokens' list"),
    (f"tenants: [{{name: a, tokens: [{{sha256: {H1}}}]}}]", "expected 'scopes'"),
    (f"tenants: [{{name: a, tokens: [{{sha256: {H1}, scopes: [read]}}], quota: {{spans_per_second: -1}}}}]",
     "quota.spans_per_second: must be a number above 0"),
    (f"tenants: [{{name: a, tokens: [{{sha256: {H1}, scopes: [read]}}], quota: {{max_sessions: 1.5}}}}]",
     "quota.max_sessions: must be a whole number above 0"),
    (f"tenants: [{{name: a, tokens: [{{sha256: {H1}, scopes: [read]}}], quota: {{spans_per_sec: 5}}}}]",
     "quota: unknown key 'spans_per_sec'"),
    (f"tenants: [{{name: a, token: [{{sha256: {H1}, scopes: [read]}}]}}]", "tenant 'a': unknown key 'token'"),
    ("tenants: [ {name: a", "not valid YAML"),
])
def test_mistakes_name_the_file_and_the_entry(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(TenantsError) as caught:
        load_tenants(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value), str(caught.value)


def test_serve_stops_on_a_bad_file_naming_the_flag_and_env(tmp_path):
    path = _write(tmp_path, "tenants: [{name: a, tokens: [{sha256: 12, scopes: [read]}]}]")
    with pytest.raises(SettingsError) as caught:
        Settings.resolve({"tenants": str(path)}, env={})
    assert str(caught.value).startswith("--tenants / OTEL_SESSIONS_TENANTS: " + str(path))
    with pytest.raises(SettingsError, match="no such file|cannot read"):
        Settings.resolve({}, env={"OTEL_SESSIONS_TENANTS": str(tmp_path / "missing.yaml")})
    good = _write(tmp_path, ISSUE_EXAMPLE, "good.yaml")
    with pytest.raises(SettingsError, match="--query-token / OTEL_SESSIONS_QUERY_TOKEN: not with --tenants"):
        Settings.resolve({"tenants": str(good), "query_token": "x"}, env={})
    assert [t.name for t in Settings.resolve({"tenants": str(good)}, env={}).tenants] == ["team-a"]


def test_single_tokens_are_one_default_tenant():
    assert single_token_tenant(None, None) is None
    access = Access([single_token_tenant("in", "q")])
    assert access.require("Bearer in", "ingest").tenant == DEFAULT_TENANT
    for scope in ("read", "admin", "metrics"):
        assert access.require("Bearer q", scope).tenant == DEFAULT_TENANT
        with pytest.raises(PermissionDenied):
            access.require("Bearer in", scope)
    with pytest.raises(PermissionDenied):
        access.require("Bearer q", "ingest")
    # only an ingest token: lookups are closed too (no token has the read scope)
    only_ingest = Access([single_token_tenant("in", None)])
    with pytest.raises(PermissionDenied):
        only_ingest.require("Bearer in", "read")
    with pytest.raises(Unauthenticated):
        only_ingest.require(None, "read")
    # one token for both: every scope
    both = Access([single_token_tenant("same", "same")])
    assert both.require("Bearer same", "ingest").scopes == {"ingest", "read", "admin", "metrics"}
    # no token at all: open, the default tenant
    assert Access().require(None, "admin").tenant == DEFAULT_TENANT


def test_namespaces_never_overlap():
    assert tenant_key_prefix("ots", DEFAULT_TENANT) == "ots"
    assert tenant_key_prefix("ots", "team-a") == "ots:t.team-a"
    from otel_sessions.exporter.store.keys import Keys

    default, a, a_b = Keys("ots"), Keys(tenant_key_prefix("ots", "a")), Keys(tenant_key_prefix("ots", "a.b"))
    for keys in (default, a, a_b):
        built = [*keys.session("s"), keys.seen(0), keys.trace_map(bytes(16), 1), keys.tail_channel("s"),
                 keys.services(0), keys.quota_bucket("spans"), keys.ready_probe(), keys.user(0, "u")]
        assert all(k.startswith(keys.prefix + ":") for k in built)
    # the default's keys continue '{', 'ready' or 'quota:' after 'ots:', never 't.'
    assert not any(k.startswith("ots:t.") for k in [*default.session("t.a:x"), default.quota_bucket("spans"),
                                                    default.ready_probe()])
    assert set(default.session("x")).isdisjoint(a.session("x")) and set(a.session("x")).isdisjoint(a_b.session("x"))


def test_tokens_new_prints_a_token_and_its_line():
    out = cli("tokens", "new", "--scopes", "ingest,read").stdout.splitlines()
    token = out[0].removeprefix("token: ")
    # indented to paste under a tenant's "tokens:" as the README's example has it
    assert len(token) >= 43 and out[2] == f"      - sha256: {hashlib.sha256(token.encode()).hexdigest()}"
    assert out[3] == "        scopes: [ingest, read]"
    made = json.loads(cli("tokens", "new", "--scopes", "admin", "--json").stdout)
    assert made["sha256"] == hashlib.sha256(made["token"].encode()).hexdigest() and made["scopes"] == ["admin"]
    assert made["token"] != token
    bad = cli("tokens", "new", "--scopes", "owner", expect=2)
    assert "owner" in bad.stderr


def test_tokens_new_writes_the_token_to_a_file_of_its_owner(tmp_path):
    out = tmp_path / "team-a.token"
    made = json.loads(cli("tokens", "new", "--scopes", "ingest", "--json", "--out", str(out)).stdout)
    assert "token" not in made and made["file"] == str(out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == made["sha256"] and not out.read_text().endswith("\n")
    assert out.stat().st_mode & 0o077 == 0
    assert "cannot create" in cli("tokens", "new", "--out", str(out), expect=1).stderr  # never overwritten


def test_guessable_tokens_are_found():
    tenants = parse_tenants({"tenants": [{"name": "a", "tokens": [
        {"sha256": hashlib.sha256(b"test").hexdigest(), "scopes": ["read"]},
        {"sha256": hashlib.sha256(b"a-long-random-token").hexdigest(), "scopes": ["ingest"]}]}]}, "t.yaml")
    assert guessable_tokens(tenants) == [("a", "test")]


def test_a_made_token_works_in_a_file(tmp_path):
    made = json.loads(cli("tokens", "new", "--scopes", "read,admin", "--json").stdout)
    path = _write(tmp_path, f"tenants:\n  - name: ops\n    tokens:\n      - sha256: {made['sha256']}\n"
                  "        scopes: [read, admin]\n")
    access = Access(load_tenants(path))
    assert access.require(f"Bearer {made['token']}", "admin").tenant == "ops"


def test_the_readme_example_file_and_commands(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Tenants, tokens, scopes and quotas", 1)[1].split("\n## ", 1)[0]
    yaml_block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    tenants = load_tenants(_write(tmp_path, yaml_block))
    assert [t.name for t in tenants] == ["team-a", "ops"]
    assert guessable_tokens(tenants) == []  # no example token anyone could guess
    commands = section.split("```bash\n", 1)[1].split("```", 1)[0]
    for line in commands.splitlines():
        args = line.split("#", 1)[0].split()
        assert args[:3] == ["otel-sessions", "tokens", "new"]
        if "--out" in args:  # the file goes to the test's folder
            args[args.index("--out") + 1] = str(tmp_path / args[args.index("--out") + 1])
        assert cli(*args[1:]).returncode == 0
