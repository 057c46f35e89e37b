"""`customer-vault policy ...`: ask the policy files what they decide, reload a vault's."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Annotated

import typer
from rich.console import Console

from vault.cli.options import parse_pairs, settings
from vault.cli.remote import Address, Token, call

policy_app = typer.Typer(no_args_is_help=True, help="Check and reload the access policy.")
console = Console()
err = Console(stderr=True)


@policy_app.command("check")
def check(
    principal: Annotated[str, typer.Option(help="Principal id.")],
    tenant: Annotated[str, typer.Option(help="The principal's tenant.")],
    role: Annotated[list[str], typer.Option(help="Role (repeatable).")],
    action: Annotated[str, typer.Option(help="Action, e.g. subjects:read, fields:clear.")],
    field: Annotated[
        str | None, typer.Option(help="A data-dictionary field (checks its sensitivity class).")
    ] = None,
    resource: Annotated[
        str | None, typer.Option(help="Or a resource: *, class:<c>, view:<v>.")
    ] = None,
    purpose: Annotated[str | None, typer.Option(help="Declared purpose.")] = None,
    attr: Annotated[list[str] | None, typer.Option(help="Attribute k=v (repeatable).")] = None,
    policies_dir: Annotated[Path | None, typer.Option(help="Policy folder.")] = None,
) -> None:
    """Print the decision of the policy files for one request and the rule that decided."""
    from vault.api.admin import resolve_resource
    from vault.errors import VaultError
    from vault.fields.dictionary import DataDictionary
    from vault.policy import Action, PolicyEngine
    from vault.principal import Principal

    folder = policies_dir or settings().policies_dir
    try:
        engine = PolicyEngine.from_dir(folder)
        dictionary = DataDictionary.from_file(folder / "data_dictionary.yaml")
        try:
            act = Action(action)
        except ValueError:
            err.print(
                f"[red]error:[/red] unknown action; one of: {', '.join(a.value for a in Action)}"
            )
            raise typer.Exit(2) from None
        who = Principal(
            principal, tenant, frozenset(role), MappingProxyType(parse_pairs(attr or [], "--attr"))
        )
        target = resolve_resource(field or resource or "*", dictionary)
        decision = engine.decide(who, act, purpose=purpose, resource=target)
    except VaultError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    verdict = "[green]ALLOW[/green]" if decision.allowed else "[red]DENY[/red]"
    console.print(f"{verdict}  {act.value} on {target} for purpose {purpose or '-'}")
    console.print(f"rule:   {decision.rule}")
    console.print(f"reason: {decision.reason}")
    console.print(f"policy: {engine.version}")
    raise typer.Exit(0 if decision.allowed else 1)


@policy_app.command("reload")
def reload(address: Address = "127.0.0.1:50051", token: Token = "") -> None:
    """Ask a running vault to re-read its policy files now."""
    reply = call(address, token, "admin", "ReloadPolicy")
    state = "changed" if reply.changed else "unchanged"
    console.print(f"policy {state}; in force: {reply.status.version}")


@policy_app.command("status")
def status(address: Address = "127.0.0.1:50051", token: Token = "") -> None:
    """Which policy a running vault has in force."""
    reply = call(address, token, "admin", "GetPolicyStatus").status
    console.print(f"version:  {reply.version} ({reply.policy_lines} lines)")
    console.print(f"views:    {', '.join(reply.views)}")
    console.print(f"purposes: {', '.join(reply.purposes)}")
    if reply.last_reload_error:
        console.print(f"[red]last reload refused:[/red] {reply.last_reload_error}")
