"""Collector configurations: every file in collector-config/
parses, names only components of the checked-in list (collector-config/components.yaml) with
keys those components accept, and points at otel-sessions on the service's default ports."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from otel_sessions.exporter.serve.settings import OPTIONS, parse_listen

CONFIG_DIR = Path(__file__).resolve().parents[2] / "collector-config"
COMPONENTS = yaml.safe_load((CONFIG_DIR / "components.yaml").read_text())
DEFAULTS = {option.name: option.default for option in OPTIONS}
GRPC_PORT = parse_listen(DEFAULTS["grpc_listen"])[1]
HTTP_PORT = parse_listen(DEFAULTS["http_listen"])[1]
FILES = sorted(p for p in CONFIG_DIR.glob("*.yaml") if p.name != "components.yaml")
COLLECTOR_FILES = [p for p in FILES if "apiVersion" not in yaml.safe_load(p.read_text())]
GRAFANA_FILES = [p for p in FILES if p not in COLLECTOR_FILES]
KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _spec(kind: str, component_id: str) -> dict:
    """The components.yaml entry of a component id (``type`` or ``type/name``), aliases included."""
    type_ = component_id.split("/", 1)[0]
    for name, spec in (COMPONENTS["components"].get(kind) or {}).items():
        if type_ == name or type_ in spec.get("aliases", ()):
            return spec
    raise AssertionError(f"{kind} {type_!r} ({component_id}) is not in collector-config/components.yaml")


def _check_keys(value, allowed, where: str) -> None:
    """Every key of ``value`` is allowed (``allowed`` None: any value; a mapping: its keys)."""
    if allowed is None or value is None:
        return
    assert isinstance(value, dict), f"{where}: expected a mapping, got {value!r}"
    for key, sub in value.items():
        assert key in allowed, f"{where}.{key}: not a key of this component (allowed: {sorted(allowed)})"
        _check_keys(sub, allowed[key], f"{where}.{key}")


def _port(endpoint: str, default: int | None = None) -> tuple[str, int | None]:
    parts = urlsplit(endpoint if "://" in endpoint else "//" + endpoint)
    return parts.hostname or "", parts.port or default


def test_the_expected_files_are_there():
    names = {p.name for p in FILES}
    assert {"fan-out-jaeger.yaml", "scale-out-loadbalancing.yaml", "tempo.yaml", "grafana-datasources.yaml",
            "tenant-token.yaml", "tenant-passthrough.yaml"} <= names
    assert COMPONENTS["collector"]["checked_against"]
    for path in FILES:  # each is commented for the reader
        assert path.read_text().lstrip().startswith("#"), path.name


@pytest.mark.parametrize("path", COLLECTOR_FILES, ids=lambda p: p.name)
def test_collector_config_names_known_components_and_keys(path):
    config = _load(path)
    collector = COMPONENTS["collector"]
    assert set(config) <= set(collector["top_level_keys"]), path.name
    defined: dict[str, set[str]] = {}
    for kind in KINDS:
        for component_id, settings in (config.get(kind) or {}).items():
            spec = _spec(kind, component_id)
            _check_keys(settings, spec.get("keys"), f"{path.name}: {kind}.{component_id}")
            for key, allowed_values in (spec.get("values") or {}).items():
                if settings and key in settings:
                    assert settings[key] in allowed_values, f"{component_id}.{key} = {settings[key]!r}"
            defined.setdefault(kind, set()).add(component_id)
    service = config["service"]
    assert set(service) <= set(collector["service_keys"])
    assert set(service.get("extensions", [])) <= defined.get("extensions", set())
    assert service["pipelines"]
    for pipeline_id, pipeline in service["pipelines"].items():
        assert pipeline_id.split("/", 1)[0] in collector["pipeline_types"]
        assert set(pipeline) <= set(collector["pipeline_keys"])
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind, []):
                assert component_id in defined.get(kind, set()), f"{pipeline_id}: {component_id} is not defined"
        assert pipeline["receivers"] and pipeline["exporters"]
    # an exporter's authenticator is an extension that is defined and enabled
    enabled = set(service.get("extensions", []))
    for component_id, settings in (config.get("exporters") or {}).items():
        authenticator = ((settings or {}).get("auth") or {}).get("authenticator")
        if authenticator is not None:
            assert authenticator in enabled, f"{component_id}: authenticator {authenticator} is not enabled"
            if authenticator.split("/")[0] == "bearertokenauth" and component_id.split("/")[0] in ("otlp", "otlp_grpc"):
                # its gRPC credentials require transport security: no token over plaintext gRPC
                assert not (settings.get("tls") or {}).get("insecure"), f"{component_id}: bearertokenauth needs TLS"
    # the bearertokenauth extension's own rule (Config.Validate): a token, tokens or a file; not token with tokens
    for component_id, settings in (config.get("extensions") or {}).items():
        if component_id.split("/")[0] == "bearertokenauth":
            settings = settings or {}
            assert settings.get("token") or settings.get("tokens") or settings.get("filename"), component_id
            assert not (settings.get("token") and settings.get("tokens")), component_id
    # the loadbalancing exporter's own rule (Config.Validate): routing_attributes iff routing_key attributes
    for component_id, settings in (config.get("exporters") or {}).items():
        if component_id.split("/")[0] in ("loadbalancing", "load_balancing"):
            assert (settings.get("routing_key") == "attributes") == bool(settings.get("routing_attributes"))
            resolver = settings["resolver"]
            assert len(resolver) >= 1 and set(resolver) <= {"static", "dns", "k8s", "aws_cloud_map"}


@pytest.mark.parametrize("path", COLLECTOR_FILES, ids=lambda p: p.name)
def test_ports_match_the_service_defaults(path):
    config = _load(path)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert _port(protocols["grpc"]["endpoint"])[1] == GRPC_PORT
    assert _port(protocols["http"]["endpoint"])[1] == HTTP_PORT
    targets = 0
    for component_id, settings in config["exporters"].items():
        type_ = component_id.split("/")[0]
        if type_ in ("otlp", "otlp_grpc") and "otel-sessions" in settings["endpoint"]:
            assert _port(settings["endpoint"])[1] == GRPC_PORT
            targets += 1
        elif type_ in ("otlphttp", "otlp_http") and "otel-sessions" in settings["endpoint"]:
            assert _port(settings["endpoint"])[1] == HTTP_PORT and urlsplit(settings["endpoint"]).path in ("", "/")
            targets += 1
        elif type_ in ("loadbalancing", "load_balancing"):
            for hostname in settings["resolver"].get("static", {}).get("hostnames", []):
                assert "otel-sessions" in hostname
                assert _port(hostname, default=4317)[1] == GRPC_PORT  # 4317: the exporter's default too
                targets += 1
            if "dns" in settings["resolver"]:
                assert int(settings["resolver"]["dns"].get("port", 4317)) == GRPC_PORT
    assert targets >= 1, f"{path.name} sends nothing to otel-sessions"


def test_the_checks_refuse_unknown_components_and_keys():
    with pytest.raises(AssertionError, match="not in collector-config/components.yaml"):
        _spec("exporters", "jaeger")  # the Jaeger exporter left the Collector: use otlp
    with pytest.raises(AssertionError, match="not a key"):
        _check_keys({"routing_key": "attributes", "routing_attribute": ["session.id"]},
                    _spec("exporters", "loadbalancing")["keys"], "loadbalancing")
    with pytest.raises(AssertionError, match="not a key"):
        _check_keys({"protocols": {"grpc": {"endpont": "0.0.0.0:4317"}}}, _spec("receivers", "otlp")["keys"], "otlp")
    assert _spec("exporters", "otlp_grpc/x") is _spec("exporters", "otlp")  # the newer name


def test_fan_out_sends_every_span_to_jaeger_and_otel_sessions():
    config = _load(CONFIG_DIR / "fan-out-jaeger.yaml")
    pipeline = config["service"]["pipelines"]["traces"]
    assert "batch" in pipeline["processors"]
    endpoints = {config["exporters"][e]["endpoint"] for e in pipeline["exporters"]}
    assert any("jaeger" in e for e in endpoints) and any("otel-sessions" in e for e in endpoints)


def test_scale_out_routes_on_session_id():
    config = _load(CONFIG_DIR / "scale-out-loadbalancing.yaml")
    exporter = config["exporters"]["loadbalancing"]
    assert exporter["routing_key"] == "attributes"
    assert exporter["routing_attributes"] == ["session.id"]
    assert "endpoint" not in exporter["protocol"]["otlp"]  # the resolver supplies it
    assert len(exporter["resolver"]["static"]["hostnames"]) >= 2


def test_tempo_stack_sends_to_tempo_and_otel_sessions():
    config = _load(CONFIG_DIR / "tempo.yaml")
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    assert {"otlp/tempo", "otlphttp/otel-sessions"} <= set(exporters)


@pytest.mark.parametrize("path", GRAFANA_FILES, ids=lambda p: p.name)
def test_grafana_provisioning_points_a_jaeger_data_source_at_otel_sessions(path):
    spec = COMPONENTS["grafana_datasources"]
    config = _load(path)
    assert config["apiVersion"] == 1
    assert set(config) <= set(spec["top_level_keys"])
    jaeger = []
    for source in config["datasources"]:
        assert set(source) <= set(spec["datasource_keys"]), source["name"]
        assert source["type"] in spec["types"]
        if source["type"] == "jaeger":
            assert set(source.get("jsonData") or {}) <= set(spec["jaeger_json_data_keys"])
            jaeger.append(source)
    (source,) = [s for s in jaeger if "otel-sessions" in s["url"]]
    parts = urlsplit(source["url"])
    assert parts.scheme == "http" and parts.port == HTTP_PORT and parts.path in ("", "/")
    assert source["access"] == "proxy"


def test_tenant_token_sends_the_token_from_a_file_over_grpc_and_http():
    config = _load(CONFIG_DIR / "tenant-token.yaml")
    (extension_id,) = [e for e in config["extensions"] if e.startswith("bearertokenauth")]
    extension = config["extensions"][extension_id]
    assert extension["filename"].startswith("/") and "token" not in extension and "tokens" not in extension
    assert extension_id in config["service"]["extensions"]
    kinds = set()
    for pipeline in config["service"]["pipelines"].values():
        for exporter_id in pipeline["exporters"]:
            exporter = config["exporters"][exporter_id]
            assert "otel-sessions" in exporter["endpoint"]
            assert exporter["auth"]["authenticator"] == extension_id
            assert "headers" not in exporter  # the token comes from the extension only
            kinds.add(exporter_id.split("/")[0])
    assert kinds == {"otlp", "otlphttp"}
    assert set(config["service"]["pipelines"]) == {"traces", "logs"}
    # the comment says how the file is mounted, where the service reads its own token from
    text = (CONFIG_DIR / "tenant-token.yaml").read_text()
    assert "volumeMounts" in text and "--ingest-token-file" in text and extension["filename"] in text


def test_tenant_passthrough_keeps_each_apps_token_with_its_data():
    config = _load(CONFIG_DIR / "tenant-passthrough.yaml")
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        assert protocol["include_metadata"] is True
    assert config["processors"]["batch"]["metadata_keys"] == ["authorization"]
    (extension_id,) = config["extensions"]
    assert extension_id.startswith("headers_setter") and extension_id in config["service"]["extensions"]
    assert config["extensions"][extension_id]["headers"] == [{"key": "authorization", "from_context": "authorization"}]
    assert set(config["service"]["pipelines"]) == {"traces", "logs"}
    for pipeline in config["service"]["pipelines"].values():
        assert "batch" in pipeline["processors"]
        for exporter_id in pipeline["exporters"]:
            exporter = config["exporters"][exporter_id]
            assert exporter["auth"]["authenticator"] == extension_id and "headers" not in exporter


def test_the_checks_refuse_an_authenticator_that_cannot_work(tmp_path):
    """The generic check of a file that names an extension it does not enable, or sends a
    bearer token over plaintext gRPC, fails."""
    config = _load(CONFIG_DIR / "tenant-token.yaml")
    bad = tmp_path / "bad.yaml"
    config["service"]["extensions"] = []
    bad.write_text(yaml.safe_dump(config))
    with pytest.raises(AssertionError, match="is not enabled"):
        test_collector_config_names_known_components_and_keys(bad)
    config = _load(CONFIG_DIR / "tenant-token.yaml")
    config["exporters"]["otlp/otel-sessions"]["tls"] = {"insecure": True}
    bad.write_text(yaml.safe_dump(config))
    with pytest.raises(AssertionError, match="bearertokenauth needs TLS"):
        test_collector_config_names_known_components_and_keys(bad)
