"""Reading deploy/: the Dockerfile's instructions, YAML documents, and what the code
accepts (CLI flags from `--help`, setting names from `Settings`)."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.sdk import environment_variables as otel_variables

from tests.conftest import REPO_ROOT
from tests.integration.serving import CUSTOMER_VAULT, clean_env
from vault.config import Settings

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
PORT = 50051
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD, parsed."""
        text = self.value
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1]
        parsed = json.loads(text)
        assert isinstance(parsed, list) and all(isinstance(p, str) for p in parsed)
        return parsed


def dockerfile_stages(path: Path = DEPLOY / "Dockerfile") -> list[list[Instruction]]:
    """The Dockerfile's instructions, grouped by build stage (continuations joined)."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in lines:
        keyword, _, value = line.partition(" ")
        instruction = Instruction(keyword.upper(), value.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def dockerfile_env(stage: list[Instruction]) -> dict[str, str]:
    """The ENV of a stage (the `KEY=value KEY=value` form)."""
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in instruction.value.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object in the kustomization's resources, by (kind, name)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    objects = {}
    for resource in kustomization["resources"]:
        for doc in yaml_documents(K8S / resource):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


@cache
def cli_flags(*command: str) -> frozenset[str]:
    """The options `customer-vault COMMAND --help` lists."""
    env = clean_env(COLUMNS="200", NO_COLOR="1", TERM="dumb")
    done = subprocess.run(
        [str(CUSTOMER_VAULT), *command, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return frozenset(_FLAG.findall(done.stdout))


def setting_env_names() -> frozenset[str]:
    """The environment variables `Settings` reads."""
    names = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else f"VAULT_{name.upper()}")
    return frozenset(names)


def assert_known_env(names: set[str]) -> None:
    """Every VAULT_ name is a setting; every OTEL_ name is one the SDK or Settings reads."""
    vault = {n for n in names if n.startswith("VAULT_")}
    assert vault - setting_env_names() == set(), "not a setting"
    otel = {n for n in names if n.startswith("OTEL_")}
    assert otel - setting_env_names() - set(dir(otel_variables)) == set(), "unknown OTEL_"


def assert_flags_exist(argv: list[str]) -> None:
    """`argv` (after the program name) is a real command (its leading words) followed by
    flags that command lists in its --help."""
    command: list[str] = []
    for word in argv:
        if word.startswith("-"):
            break
        command.append(word)
    flags = cli_flags(*command)  # a command that does not exist fails its --help
    used = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    assert used <= flags, (command, used - flags)
