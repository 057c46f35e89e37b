"""The Dockerfile: multi-stage, non-root, read-only root friendly, a gRPC health check,
and a container command that really serves (run here as a plain process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.deploy.manifests import (
    DEPLOY,
    PORT,
    Instruction,
    assert_flags_exist,
    assert_known_env,
    dockerfile_env,
    dockerfile_stages,
)
from tests.integration.serving import clean_env, run_cli, serving
from vault.crypto import generate_ed25519_keypair

DATA_DIR = "/var/lib/customer-vault"
POLICIES_DIR = "/etc/customer-vault/policies"
HEALTHCHECK = DEPLOY / "healthcheck.py"


def _final() -> list[Instruction]:
    return dockerfile_stages()[-1]


def _one(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, (keyword, found)
    return found[0]


def _copies(stage: list[Instruction]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY without --from (those read the context)."""
    out = []
    for instruction in stage:
        words = instruction.value.split()
        if instruction.keyword == "COPY" and not words[0].startswith("--from"):
            words = [w for w in words if not w.startswith("--")]
            out.append((words[:-1], words[-1]))
    return out


def test_the_image_is_built_in_one_stage_and_runs_from_another() -> None:
    build, *_, final = dockerfile_stages()
    assert len(dockerfile_stages()) >= 2
    assert any("pip install" in i.value for i in build if i.keyword == "RUN")
    # Byte code is compiled at build time: nothing writes below /opt at run time.
    assert any("compileall" in i.value for i in build if i.keyword == "RUN")
    assert any(i.value.startswith("--from=build ") for i in final if i.keyword == "COPY")
    assert not any("pip install" in i.value for i in final if i.keyword == "RUN")


def test_the_image_installs_third_party_packages_only_from_the_hashed_lock() -> None:
    build = dockerfile_stages()[0]
    installs = [i.value for i in build if i.keyword == "RUN" and "pip install" in i.value]
    first, *rest = installs
    assert "--require-hashes -r requirements.lock" in first
    assert rest and all("--no-deps" in r and "--no-build-isolation" in r for r in rest)
    copies = [sources for sources, _ in _copies(build)]
    # The lock is installed before the project's own code is even copied in.
    assert copies.index(["requirements.lock"]) < copies.index(["vault"])


def test_the_container_runs_as_a_fixed_non_root_user() -> None:
    user, _, group = _one(_final(), "USER").value.partition(":")
    assert user.isdigit() and int(user) >= 1000
    assert group.isdigit() and int(group) >= 1000


def test_only_the_data_dir_and_tmp_are_writable_volumes() -> None:
    final = _final()
    assert set(json.loads(_one(final, "VOLUME").value)) == {DATA_DIR, "/tmp"}
    env = dockerfile_env(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["VAULT_DATA_DIR"] == DATA_DIR
    assert env["VAULT_POLICIES_DIR"] == POLICIES_DIR
    assert_known_env(set(env))


def test_everything_copied_exists_and_passes_the_dockerignore() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = [
        src for stage in dockerfile_stages() for sources, _ in _copies(stage) for src in sources
    ]
    assert copied
    for source in copied:
        assert (REPO_ROOT / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is excluded by the .dockerignore"
    assert (DEPLOY / "healthcheck.py", "/usr/local/bin/vault-healthcheck") in [
        (REPO_ROOT / s[0], d) for s, d in _copies(_final())
    ]


def test_the_port_and_the_health_check_match_the_command() -> None:
    final = _final()
    assert _one(final, "EXPOSE").value == str(PORT)
    check = _one(final, "HEALTHCHECK").exec_form()
    assert check == ["python", "/usr/local/bin/vault-healthcheck", f"127.0.0.1:{PORT}"]
    command = _one(final, "ENTRYPOINT").exec_form() + _one(final, "CMD").exec_form()
    assert command[:2] == ["customer-vault", "serve"]
    assert command[command.index("--address") + 1] == f"0.0.0.0:{PORT}"
    assert_flags_exist(command[1:])


def _local(value: str, data: Path, *, loopback: bool = True) -> str:
    """A container path or address as this machine runs it (port 0; loopback unless
    the test is about the address itself)."""
    value = value.replace(DATA_DIR, str(data)).replace(POLICIES_DIR, str(REPO_ROOT / "policies"))
    return value.replace(f"0.0.0.0:{PORT}", "127.0.0.1:0" if loopback else "0.0.0.0:0")


def _health(address: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), address, *extra],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _container(data: Path, *, loopback: bool) -> tuple[list[str], dict[str, str]]:
    final = _final()
    command = _one(final, "ENTRYPOINT").exec_form() + _one(final, "CMD").exec_form()
    env = {k: _local(v, data) for k, v in dockerfile_env(final).items() if k != "PATH"}
    return [_local(arg, data, loopback=loopback) for arg in command[2:]], env


def test_the_default_container_refuses_to_trust_its_own_development_key(tmp_path: Path) -> None:
    """`docker run customer-vault` on 0.0.0.0 with nothing configured would trust a token
    key generated into its own volume: anyone who reads the volume mints any role."""
    data = tmp_path / "data"
    args, env = _container(data, loopback=False)
    assert "--dev" not in args
    assert "VAULT_TOKEN_PUBLIC_KEY" not in env
    done = run_cli(["serve", *args], clean_env(**env))
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "refusing to start" in message and "VAULT_TOKEN_PUBLIC_KEY" in message
    assert not (data / "keys").exists()


def test_the_container_command_serves_with_an_issuers_key_and_passes_its_health_check(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    issuer = tmp_path / "issuer"  # the identity provider's key pair, not in the volume
    generate_ed25519_keypair(issuer / "token.pem", issuer / "token.pub.pem")
    args, env = _container(data, loopback=True)
    env["VAULT_TOKEN_PUBLIC_KEY"] = str(issuer / "token.pub.pem")
    with serving(args, clean_env(**env), tmp_path / "vault.log") as vault:
        assert _health(vault.address).returncode == 0
        service = _health(vault.address, "--service", "customervault.v1.VaultService")
        assert service.returncode == 0, service.stderr
        # The embedded default: keys and the SQLite file land in the data volume.
        assert (data / "keys" / "master.json").exists() and (data / "vault.db").exists()
        code, _ = vault.terminate(30)
    assert code == 0
    refused = _health(vault.address)
    assert refused.returncode == 1 and "unhealthy: UNAVAILABLE" in refused.stderr
