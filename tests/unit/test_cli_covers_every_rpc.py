"""Every RPC of every service the vault serves has a CLI command (`vault.cli.rpcs`).

The RPCs are enumerated from the generated descriptors of every proto module, so a new
RPC (or a new service) fails here until a command and a row for it exist; a row naming a
command that does not exist fails too, and so does a row for an RPC that is gone.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import customer_vault_client.gen.customervault.v1 as generated
import typer
from customer_vault_client.services import SERVICES

from vault.cli.lazy import LazyGroup
from vault.cli.main import app
from vault.cli.rpcs import RPC_COMMANDS


def _rpcs() -> set[str]:
    found = set()
    for module_info in pkgutil.iter_modules(generated.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{generated.__name__}.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            found |= {f"{service.name}.{method.name}" for method in service.methods}
    return found


def _command(path: str) -> Any:
    command: Any = typer.main.get_command(app)
    for word in path.split():
        if word.startswith("--"):
            assert word in {o for p in command.params for o in p.opts}, path
            continue
        assert hasattr(command, "commands"), f"{path}: {word} under a plain command"
        command = command.commands.get(word)
        assert command is not None, f"{path}: no command {word!r}"
        if isinstance(command, LazyGroup):
            command = command.load()
    return command


def test_every_rpc_has_a_row_and_every_row_an_rpc() -> None:
    rpcs = _rpcs()
    assert rpcs - set(RPC_COMMANDS) == set(), "RPCs without a CLI command (vault/cli/rpcs.py)"
    assert set(RPC_COMMANDS) - rpcs == set(), "rows for RPCs that do not exist"


def test_every_row_names_a_command_that_exists() -> None:
    for rpc, path in RPC_COMMANDS.items():
        assert _command(path) is not None, rpc


def test_every_client_command_offers_format_and_output() -> None:
    for path in RPC_COMMANDS.values():
        options = {o for p in _command(path).params for o in p.opts}
        assert {"--format", "--output"} <= options, path
        assert {"--address", "--token"} <= options or path.endswith("redeem-link"), path
    # `audit export`'s --format is a file format (jsonl, csv, html); it has --output too.


def test_the_client_knows_every_service() -> None:
    services = {name for rpc in _rpcs() for name in [rpc.split(".")[0]]}
    assert {service for _, _, service in SERVICES.values()} == services
