"""deploy/compose.yaml: two replicas of one image on PostgreSQL, with an OpenTelemetry
collector and Jaeger, wired with real settings, flags and ports."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.manifests import DEPLOY, PORT, assert_flags_exist, assert_known_env
from vault.config import Settings

COMPOSE = DEPLOY / "compose.yaml"


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _vault_services() -> dict[str, dict[str, Any]]:
    return {
        n: s
        for n, s in _services().items()
        if s.get("image") == "customer-vault:dev" and s["command"][0] != "witness"
    }


def _witness_services() -> dict[str, dict[str, Any]]:
    return {
        n: s
        for n, s in _services().items()
        if s.get("image") == "customer-vault:dev" and s["command"][0] == "witness"
    }


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _replicas() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _vault_services().items() if s["command"][0] == "serve"}


def test_every_published_port_is_bound_to_the_loopback() -> None:
    """The stack runs with development keys (`serve --dev`): nothing of it may answer on
    the host's other interfaces."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = [(name, p) for name, s in services.items() for p in s.get("ports", [])]
    assert published
    for name, mapping in published:
        assert isinstance(mapping, str) and mapping.startswith("127.0.0.1:"), (name, mapping)
        assert mapping.count(":") == 2, (name, mapping)


def test_two_replicas_of_one_image_on_distinct_host_ports() -> None:
    replicas = _replicas()
    assert len(replicas) == 2
    published = []
    for service in replicas.values():
        (mapping,) = service["ports"]
        interface, host, container = mapping.split(":")
        assert interface == "127.0.0.1"
        assert int(container) == PORT
        assert service["command"][service["command"].index("--address") + 1] == f"0.0.0.0:{PORT}"
        published.append(host)
    assert len(set(published)) == 2


def test_every_vault_container_is_read_only_non_root_and_uses_real_flags() -> None:
    for name, service in _vault_services().items():
        assert service["read_only"] is True, name
        assert int(service["user"].split(":")[0]) >= 1000, name
        assert "/tmp" in service["tmpfs"], name
        assert service["cap_drop"] == ["ALL"], name
        assert_flags_exist(service["command"])
        assert_known_env(set(service["environment"]))
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve().is_file()


def test_replicas_that_share_the_generated_token_key_say_they_are_development() -> None:
    """The `keys` service generates the token signing key into the volume the replicas
    read, and they use PostgreSQL: `serve` refuses that without --dev, and the file
    must say it is a development setup."""
    services = _services()
    assert services["keys"]["command"][:2] == ["keys", "init"]
    for name, service in _replicas().items():
        env = service["environment"]
        assert "VAULT_TOKEN_PUBLIC_KEY" not in env, name
        assert "--dev" in service["command"], name
    assert "Development only" in COMPOSE.read_text().split("name:")[0]


def test_replicas_start_after_keys_and_migration_and_check_their_health() -> None:
    services = _services()
    for service in _replicas().values():
        for one_shot in ("keys", "migrate"):
            assert service["depends_on"][one_shot]["condition"] == "service_completed_successfully"
            assert services[one_shot]["restart"] == "no"
        assert service["healthcheck"]["test"] == [
            "CMD",
            "python",
            "/usr/local/bin/vault-healthcheck",
            f"127.0.0.1:{PORT}",
        ]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["keys"]["command"][:2] == ["keys", "init"]


def test_the_database_url_points_at_the_postgres_service_and_its_credentials() -> None:
    services = _services()
    postgres = services["postgres"]["environment"]
    for service in _vault_services().values():
        url = urlsplit(service["environment"]["VAULT_DATABASE_URL"])
        assert url.hostname == "postgres" and url.port == 5432
        assert (url.username, url.password) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert url.path == f"/{postgres['POSTGRES_DB']}"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_telemetry_flows_from_the_replicas_through_the_collector_to_jaeger() -> None:
    services = _services()
    for service in _replicas().values():
        endpoint = urlsplit(service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
        collector = services[str(endpoint.hostname)]
        assert "opentelemetry-collector" in collector["image"]
    collector = services["otel-collector"]
    (mount,) = collector["volumes"]
    source, target, _ = mount.split(":")
    config = yaml.safe_load((DEPLOY / source).read_text())
    assert collector["command"] == [f"--config={target}"]
    grpc_endpoint = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc_endpoint.endswith(f":{endpoint.port}")
    traces = config["service"]["pipelines"]["traces"]
    (exporter,) = traces["exporters"]
    jaeger_host = config["exporters"][exporter]["endpoint"].split(":")[0]
    assert "jaeger" in services[jaeger_host]["image"]
    assert services[jaeger_host]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"


def test_the_collector_pipelines_use_only_defined_components() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(kind, [])) <= set(config[kind]), kind


def test_the_compose_file_names_no_path_outside_the_repository() -> None:
    for service in _services().values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).resolve().is_relative_to(REPO_ROOT)


def test_one_witness_with_its_own_volume_and_key_that_the_replicas_publish_to() -> None:
    services = _services()
    witnesses = _witness_services()
    assert set(witnesses) == {"witness-keys", "witness"}
    for name, service in witnesses.items():
        assert service["read_only"] is True, name
        assert int(service["user"].split(":")[0]) >= 1000, name
        assert service["cap_drop"] == ["ALL"], name
        assert_flags_exist(service["command"])
    serve, init = services["witness"]["command"], services["witness-keys"]["command"]
    witness_dir = _option(serve, "--dir")
    # Its own volume only: it never sees the vault's private keys or database.
    (volume,) = services["witness"]["volumes"]
    assert volume == f"witness-data:{witness_dir}"
    assert "witness-data" in yaml.safe_load(COMPOSE.read_text())["volumes"]
    for replica in _replicas().values():
        assert all(not v.startswith("witness-data:") for v in replica["volumes"])
        assert replica["depends_on"]["witness"]["condition"] == "service_healthy"
    assert _option(init, "--dir") == witness_dir
    assert _option(init, "--name") == _option(serve, "--name")
    assert _option(serve, "--log-public-key") == f"{witness_dir}/log.pub.pem"
    assert services["witness-keys"]["depends_on"]["keys"]["condition"] == (
        "service_completed_successfully"
    )
    host, port = _option(serve, "--address").rsplit(":", 1)
    assert host == "0.0.0.0"
    for replica in _replicas().values():
        env = replica["environment"]
        data_dir = env["VAULT_DATA_DIR"]
        settings = Settings(audit_witnesses=json.loads(env["VAULT_AUDIT_WITNESSES"]))
        (configured,) = settings.audit_witnesses
        assert configured.name == _option(serve, "--name")
        url = urlsplit(configured.url)
        assert (url.hostname, url.port) == ("witness", int(port))
        assert str(configured.key_file) == _option(init, "--export-vkey")
        assert str(configured.key_file).startswith(f"{data_dir}/keys/")
        assert _option(init, "--log-public-key") == f"{data_dir}/keys/audit_signing.pub.pem"
        assert _option(serve, "--log-origin") == settings.audit_origin
