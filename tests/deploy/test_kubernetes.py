"""deploy/k8s: every manifest parses and is wired to what the code accepts (flags,
settings, the port, gRPC health probes); and the pods' commands, with their env and
mounts resolved the way the kubelet would, really migrate, serve and run retention."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from audit import CosignatureVerifier
from audit.witness import WitnessClient
from tests.conftest import REPO_ROOT
from tests.data import ADA
from tests.deploy.manifests import (
    DEPLOY,
    K8S,
    PORT,
    assert_flags_exist,
    assert_known_env,
    dockerfile_stages,
    k8s_objects,
)
from tests.integration.serving import CUSTOMER_VAULT, clean_env, run_cli, serving, token_for
from vault import key_custody
from vault.api.client import VaultClient
from vault.config import Settings

OBJECTS = k8s_objects()
DEPLOYMENT = OBJECTS[("Deployment", "customer-vault")]
CRONJOB = OBJECTS[("CronJob", "customer-vault-retention")]
(MIGRATE,) = [o for (kind, _), o in OBJECTS.items() if kind == "Job"]
WORKLOADS = {"server": DEPLOYMENT, "retention": CRONJOB, "migrate": MIGRATE}
WITNESS = OBJECTS[("Deployment", "customer-vault-witness")]
WITNESS_PORT = 8380
POLICIES_MAP = "customer-vault-policies"


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        workload = workload["spec"]["jobTemplate"]
    pod: dict[str, Any] = workload["spec"]["template"]
    return pod


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod(workload)["spec"]["containers"]
    return dict(container)


def _secrets() -> dict[str, set[str]]:
    return {
        name: set(obj.get("stringData", {})) | set(obj.get("data", {}))
        for (kind, name), obj in OBJECTS.items()
        if kind == "Secret"
    }


def test_every_manifest_parses_and_the_kustomization_applies_them_all() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    for obj in OBJECTS.values():
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]
    kinds = {kind for kind, _ in OBJECTS}
    assert kinds >= {
        "Deployment", "Service", "Secret", "NetworkPolicy", "PodDisruptionBudget",
        "HorizontalPodAutoscaler", "CronJob", "Job",
    }  # fmt: skip


def test_the_policies_config_map_is_generated_from_a_true_copy_of_every_policy_file() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == POLICIES_MAP
    files = {(K8S / f).resolve() for f in generator["files"]}
    copies = {p.resolve() for p in (K8S / "policies").iterdir() if p.is_file()}
    assert files == copies
    originals = {p.name: p.read_bytes() for p in (REPO_ROOT / "policies").iterdir() if p.is_file()}
    # `make k8s-policies` refreshes the copy after a policy change.
    assert {p.name: p.read_bytes() for p in copies} == originals


def _referenced_paths(kustomization: dict[str, Any]) -> list[str]:
    """Every path a kustomization loads: resources, patches, generators' files."""
    paths = list(kustomization.get("resources", []))
    for key in ("patches", "patchesStrategicMerge", "components", "crds"):
        for entry in kustomization.get(key, []):
            paths.append(entry["path"] if isinstance(entry, dict) else entry)
    for key in ("configMapGenerator", "secretGenerator"):
        for generator in kustomization.get(key, []):
            for item in [*generator.get("files", []), *generator.get("envs", [])]:
                paths.append(item.split("=", 1)[-1])
    return paths


def test_the_kustomization_loads_nothing_from_outside_its_root() -> None:
    """`kubectl apply -k deploy/k8s` works without --load-restrictor: no path climbs out
    of the directory, none is absolute, and no symlink leads out either."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    paths = _referenced_paths(kustomization)
    assert paths
    root = K8S.resolve()
    for path in paths:
        assert not Path(path).is_absolute() and ".." not in Path(path).parts, path
        assert (K8S / path).resolve().is_relative_to(root), path
        assert (K8S / path).exists(), path


def test_kubectl_builds_the_kustomization_with_the_default_load_restrictor() -> None:
    kubectl = shutil.which("kubectl") or shutil.which("kustomize")
    if kubectl is None:
        pytest.skip("neither kubectl nor kustomize is installed")
    command = (
        [kubectl, "kustomize", str(K8S)]
        if kubectl.endswith("kubectl")
        else [kubectl, "build", str(K8S)]
    )
    built = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, built.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(built.stdout) if doc}
    assert {"Deployment", "ConfigMap", "CronJob", "Service"} <= kinds


def test_the_server_listens_on_the_probed_port_and_probes_grpc_health() -> None:
    container = _container(DEPLOYMENT)
    args = container["args"]
    assert args[0] == "serve"
    assert_flags_exist(args)
    assert args[args.index("--address") + 1] == f"0.0.0.0:{PORT}"
    (port,) = container["ports"]
    assert port["containerPort"] == PORT and port["name"] == "grpc"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": PORT}, probe
    expose = [i.value for i in dockerfile_stages()[-1] if i.keyword == "EXPOSE"]
    assert expose == [str(PORT)]
    # preStop + the vault's own drain fit inside the termination grace period.
    env = {e["name"]: e.get("value") for e in container["env"]}
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    grace = _pod(DEPLOYMENT)["spec"]["terminationGracePeriodSeconds"]
    assert sleep + float(env["VAULT_SHUTDOWN_GRACE_SECONDS"]) + 5 <= grace


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_pods_run_non_root_on_a_read_only_root_with_resource_limits(name: str) -> None:
    workload = WORKLOADS[name]
    pod = _pod(workload)["spec"]
    user = next(i.value for i in dockerfile_stages()[-1] if i.keyword == "USER")
    uid = int(user.split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    container = _container(workload)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_env_names_are_settings_and_every_reference_resolves(name: str) -> None:
    workload = WORKLOADS[name]
    container = _container(workload)
    assert_flags_exist(container["args"])
    env = container["env"]
    assert_known_env({e["name"] for e in env})
    secrets = _secrets()
    for entry in env:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["key"] in secrets[ref["name"]], ref
    volumes = {v["name"]: v for v in _pod(workload)["spec"].get("volumes", [])}
    mounted: dict[str, set[str]] = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            items = volume["secret"]["items"]
            assert {i["key"] for i in items} <= secrets[volume["secret"]["secretName"]]
            mounted[mount["mountPath"]] = {i["path"] for i in items}
        if "configMap" in volume:
            assert volume["configMap"]["name"] == POLICIES_MAP
    # Key paths in the env point at files the Secret projects, with the public key next
    # to each signing key where Settings looks for it.
    values = {e["name"]: e.get("value", "") for e in env}
    for setting in (
        "VAULT_TOKEN_PUBLIC_KEY",
        "VAULT_AUDIT_SIGNING_KEY",
        "VAULT_RECEIPT_SIGNING_KEY",
    ):
        if setting in values:
            path = Path(values[setting])
            assert path.name in mounted[str(path.parent)], setting
            if setting != "VAULT_TOKEN_PUBLIC_KEY":
                assert path.with_suffix(".pub.pem").name in mounted[str(path.parent)]


def test_the_retention_schedule_belongs_to_the_cronjob_alone() -> None:
    server_env = {e["name"]: e.get("value") for e in _container(DEPLOYMENT)["env"]}
    assert server_env["VAULT_RETENTION_SCHEDULE"] == ""
    assert _container(CRONJOB)["args"][:2] == ["retention", "run"]
    assert CRONJOB["spec"]["concurrencyPolicy"] == "Forbid"
    assert _container(MIGRATE)["args"] == ["migrate"]


def test_service_budget_autoscaler_and_network_policy_select_the_server() -> None:
    labels = _pod(DEPLOYMENT)["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for kind, name in (("Service", "customer-vault"), ("Service", "customer-vault-headless")):
        service = OBJECTS[(kind, name)]["spec"]
        assert service["selector"].items() <= labels.items()
        (port,) = service["ports"]
        assert port["port"] == PORT and port["targetPort"] == "grpc"
    assert OBJECTS[("Service", "customer-vault-headless")]["spec"]["clusterIP"] == "None"
    budget = OBJECTS[("PodDisruptionBudget", "customer-vault")]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    autoscaler = OBJECTS[("HorizontalPodAutoscaler", "customer-vault")]["spec"]
    assert autoscaler["scaleTargetRef"]["name"] == DEPLOYMENT["metadata"]["name"]
    assert autoscaler["minReplicas"] >= 2
    policy = OBJECTS[("NetworkPolicy", "customer-vault")]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": PORT, "protocol": "TCP"}]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 5432, 4317, WITNESS_PORT}


def _witness_args() -> list[str]:
    return list(_container(WITNESS)["args"])


def _option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_the_witness_has_its_own_claim_key_and_service_and_the_vault_publishes_to_it() -> None:
    args = _witness_args()
    assert args[:2] == ["witness", "serve"]
    assert_flags_exist(args)
    pod = _pod(WITNESS)["spec"]
    assert WITNESS["spec"]["replicas"] == 1
    assert WITNESS["spec"]["strategy"]["type"] == "Recreate"  # one writer of its state file
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in _container(WITNESS)["volumeMounts"]}
    claim = mounts[_option(args, "--dir")]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in OBJECTS
    # Of the vault's Secret it sees the log's public key and nothing else.
    secret_volumes = [v["secret"] for v in volumes.values() if "secret" in v]
    assert [[i["key"] for i in s["items"]] for s in secret_volumes] == [["audit_signing.pub.pem"]]
    key_path = Path(_option(args, "--log-public-key"))
    assert "secret" in mounts[str(key_path.parent)]
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = _container(WITNESS)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    host, port = _option(args, "--address").rsplit(":", 1)
    assert (host, int(port)) == ("0.0.0.0", WITNESS_PORT)
    service = OBJECTS[("Service", "customer-vault-witness")]["spec"]
    assert service["selector"].items() <= pod_labels(WITNESS).items()
    (service_port,) = service["ports"]
    assert service_port["port"] == WITNESS_PORT
    policy = OBJECTS[("NetworkPolicy", "customer-vault-witness")]["spec"]
    (ingress,) = policy["ingress"]
    assert (
        ingress["from"][0]["podSelector"]["matchLabels"].items() <= pod_labels(DEPLOYMENT).items()
    )
    # The vault's replicas publish to that Service, with the key the Secret projects.
    env = {e["name"]: e.get("value") for e in _container(DEPLOYMENT)["env"]}
    (witness,) = Settings(
        audit_witnesses=json.loads(str(env["VAULT_AUDIT_WITNESSES"]))
    ).audit_witnesses
    assert witness.name == _option(args, "--name")
    url = urlsplit(witness.url)
    assert (url.hostname, url.port) == ("customer-vault-witness", WITNESS_PORT)
    assert witness.key_file is not None
    assert witness.key_file.name in _secrets()["customer-vault-keys"]
    assert _option(args, "--log-origin") == Settings().audit_origin


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = _pod(workload)["metadata"]["labels"]
    return labels


# --- the pods' commands as plain processes ---------------------------------------------------

_WITNESS_LINE = re.compile(r"customer-vault witness \S+ on 127\.0\.0\.1:(\d+)")


@contextmanager
def witness_serving(args: list[str], env: dict[str, str]) -> Iterator[str]:
    """Run the witness pod's command; yield its URL."""
    process = subprocess.Popen(
        [str(CUSTOMER_VAULT), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        found = _WITNESS_LINE.search(process.stdout.readline())
        assert found, "the witness did not start"
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        process.terminate()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def _eventually_cosigned(kubelet: Kubelet, env: dict[str, str]) -> bool:
    """Whether the witness cosigns a checkpoint of the replica's log within a minute."""
    (configured,) = json.loads(env["VAULT_AUDIT_WITNESSES"])
    client = WitnessClient(
        kubelet.witness_url,
        CosignatureVerifier.from_verifier_key(Path(configured["key_file"]).read_text().strip()),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        note = client.latest(Settings().audit_origin)
        if note is not None:
            client.verifier.find(note)
            return True
        time.sleep(0.2)
    return False


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class Kubelet:
    """Resolves a container's env and mounts onto this machine: secrets from freshly
    generated keys, the policies ConfigMap from policies/, emptyDirs under a temp dir."""

    def __init__(self, tmp: Path, database_url: str, collector: str) -> None:
        self.tmp = tmp
        generated = tmp / "generated"
        key_custody.init_keys(Settings(data_dir=generated))
        key_dir = generated / "keys"
        self.issuer_dir = generated
        # The witness's claim, initialized as its first start would (its key is there).
        self.claim = tmp / "claim"
        initialized = run_cli(
            ["witness", "init", "--dir", str(self.claim), "--name", "witness.customer-vault/w1"],
            clean_env(),
        )
        assert initialized.returncode == 0, initialized.stderr
        files = {p.name: p.read_text() for p in key_dir.iterdir()}
        files["witness.vkey"] = (self.claim / "witness.vkey").read_text()
        self.witness_url = "http://127.0.0.1:9"  # until a witness runs
        self.secrets = {
            "customer-vault-keys": {**files, "VAULT_MASTER_KEYS": files["master.json"]},
            "customer-vault-database": {"VAULT_DATABASE_URL": database_url},
        }
        self.collector = collector

    def mounts(self, workload: dict[str, Any]) -> dict[str, str]:
        volumes = {v["name"]: v for v in _pod(workload)["spec"].get("volumes", [])}
        paths = {}
        for mount in _container(workload)["volumeMounts"]:
            volume = volumes[mount["name"]]
            local = self.tmp / workload["metadata"]["name"] / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                local = K8S / "policies"
            if "persistentVolumeClaim" in volume:
                local = self.claim
            if "secret" in volume:
                secret = self.secrets[volume["secret"]["secretName"]]
                # The kubelet projects a Secret root-owned with group fsGroup and the
                # volume's defaultMode (0440), which `serve` accepts from root (see
                # vault/startup.py). Here the files are ours, so owner-only: 0400.
                mode = volume["secret"]["defaultMode"] & 0o700
                for item in volume["secret"]["items"]:
                    (local / item["path"]).write_text(secret[item["key"]])
                    (local / item["path"]).chmod(mode)
            paths[mount["mountPath"]] = str(local)
        return paths

    def command(self, workload: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        mounts = self.mounts(workload)

        def local(value: str) -> str:
            for path in sorted(mounts, key=len, reverse=True):
                if value == path or value.startswith(f"{path}/"):
                    return mounts[path] + value[len(path) :]
            for port in (PORT, WITNESS_PORT):
                value = value.replace(f"0.0.0.0:{port}", "127.0.0.1:0")
            return value

        env: dict[str, str] = {}
        for entry in _container(workload).get("env", []):
            source = entry.get("valueFrom", {})
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                value = self.secrets[ref["name"]][ref["key"]]
            elif "fieldRef" in source:
                value = "customer-vault-0"
            else:
                value = local(
                    _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), entry["value"])
                )
            env[entry["name"]] = value
        if "VAULT_AUDIT_WITNESSES" in env:
            # The Service's DNS name is this machine's witness process; the key file is
            # where the Secret's item landed.
            witnesses = json.loads(env["VAULT_AUDIT_WITNESSES"])
            for witness in witnesses:
                witness["url"] = self.witness_url
                witness["key_file"] = local(witness["key_file"])
            env["VAULT_AUDIT_WITNESSES"] = json.dumps(witnesses)
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.collector  # nothing listens there
        return [local(a) for a in _container(workload)["args"]], clean_env(**env)


@pytest.mark.postgres
def test_the_pods_commands_migrate_serve_and_run_retention_against_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    kubelet = Kubelet(tmp_path, postgres_url, collector="http://127.0.0.1:9")

    args, env = kubelet.command(MIGRATE)
    migrated = run_cli(args, env)
    assert migrated.returncode == 0, migrated.stderr

    witness_args, witness_env = kubelet.command(WITNESS)
    with witness_serving(witness_args, witness_env) as witness_url:
        kubelet.witness_url = witness_url
        _serve_and_retain(kubelet, tmp_path)


def _serve_and_retain(kubelet: Kubelet, tmp_path: Path) -> None:
    args, env = kubelet.command(DEPLOYMENT)
    assert args[0] == "serve"
    with serving(args[1:], env, tmp_path / "server.log") as vault:
        health = subprocess.run(
            [sys.executable, str(DEPLOY / "healthcheck.py"), vault.address],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert health.returncode == 0, health.stderr
        # The token verifies against the public key the Secret projects.
        with VaultClient(vault.address, token_for(kubelet.issuer_dir)) as client:
            assert client.create(ADA).subject_id
        # The replica publishes its checkpoints to the witness the manifests run.
        assert _eventually_cosigned(kubelet, env), vault.log()

        retention_args, retention_env = kubelet.command(CRONJOB)
        ran = run_cli(retention_args, retention_env)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)

        code, took = vault.terminate(30)
    assert code == 0
    grace = _pod(DEPLOYMENT)["spec"]["terminationGracePeriodSeconds"]
    assert took < grace  # even with the collector unreachable
