"""`customer-vault policy ...`: ask the policy files (or a running vault) what they
decide, reload a vault's."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import typer

from vault.cli import whatif
from vault.cli.options import parse_pairs, settings
from vault.cli.output import Format, FormatOpt, Output, print_document, print_message
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call

policy_app = typer.Typer(no_args_is_help=True, help="Check and reload the access policy.")

PrincipalId = Annotated[str, typer.Option("--principal", help="Principal id.")]
Tenant = Annotated[str, typer.Option(help="The principal's tenant.")]
Roles = Annotated[list[str], typer.Option("--role", help="Role (repeatable).")]
ActionName = Annotated[str, typer.Option(help="Action, e.g. subjects:read, fields:clear.")]
PurposeOpt = Annotated[str | None, typer.Option(help="Declared purpose.")]
Attributes = Annotated[list[str] | None, typer.Option("--attr", help="Attribute k=v (repeatable).")]


def _verdict(document: dict[str, Any]) -> str:
    verdict = "[green]ALLOW[/green]" if document["allowed"] else "[red]DENY[/red]"
    return "\n".join(
        [
            f"{verdict}  {document['action']} on {document['resource']} for purpose "
            f"{document['purpose'] or '-'}",
            f"rule:   {document['rule']}",
            f"reason: {document['reason']}",
            f"policy: {document['policy_version']}",
        ]
    )


@policy_app.command("check")
def check(
    principal: PrincipalId,
    tenant: Tenant,
    role: Roles,
    action: ActionName,
    field: Annotated[
        str | None, typer.Option(help="A data-dictionary field (checks its sensitivity class).")
    ] = None,
    resource: Annotated[
        str | None, typer.Option(help="Or a resource: *, class:<c>, view:<v>.")
    ] = None,
    purpose: PurposeOpt = None,
    attr: Attributes = None,
    policies_dir: Annotated[Path | None, typer.Option(help="Policy folder.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Print the decision of the policy files for one request and the rule that decided
    (offline; `policy ask` asks a running vault)."""
    from rich.console import Console

    from vault.api.admin import resolve_resource
    from vault.errors import VaultError
    from vault.fields.dictionary import DataDictionary
    from vault.policy import Action, PolicyEngine
    from vault.principal import Principal

    err = Console(stderr=True)
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
    document = {
        "allowed": decision.allowed,
        "action": act.value,
        "resource": target,
        "purpose": purpose or "",
        "rule": decision.rule,
        "reason": decision.reason,
        "policy_version": engine.version,
    }
    print_document(document, fmt, table=_verdict(document))
    raise typer.Exit(0 if decision.allowed else 1)


@policy_app.command("ask")
def ask(
    principal: PrincipalId,
    tenant: Tenant,
    role: Roles,
    action: ActionName,
    resource: Annotated[str, typer.Option(help="A field, class:<c>, view:<v> or *.")] = "*",
    purpose: PurposeOpt = None,
    attr: Attributes = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Ask a running vault what its policy in force decides for one request (exit 1 on
    deny)."""
    reply = call(
        address,
        token,
        "admin",
        "CheckPolicy",
        principal=principal,
        tenant=tenant,
        roles=role,
        attributes=parse_pairs(attr or [], "--attr"),
        action=action,
        resource=resource,
        purpose=purpose or "",
    )
    document = {
        "allowed": reply.allowed,
        "action": action,
        "resource": resource,
        "purpose": purpose or "",
        "rule": reply.rule,
        "reason": reply.reason,
        "policy_version": reply.policy_version,
    }
    print_message(reply, fmt, output, table=lambda _: _verdict(document))
    raise typer.Exit(0 if reply.allowed else 1)


@policy_app.command("reload")
def reload(
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Ask a running vault to re-read its policy files now."""
    reply = call(address, token, "admin", "ReloadPolicy")
    state = "changed" if reply.changed else "unchanged"
    print_message(
        reply, fmt, output, table=lambda r: f"policy {state}; in force: {r.status.version}"
    )


@policy_app.command("status")
def status(
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Which policy a running vault has in force."""
    reply = call(address, token, "admin", "GetPolicyStatus").status
    print_message(reply, fmt, output, table=_status_lines)


def _status_lines(reply: Any) -> str:
    lines = [
        f"version:  {reply.version} ({reply.policy_lines} lines)",
        f"views:    {', '.join(reply.views)}",
        f"purposes: {', '.join(reply.purposes)}",
    ]
    if reply.last_reload_error:
        lines.append(f"[red]last reload refused:[/red] {reply.last_reload_error}")
    return "\n".join(lines)


# The what-if commands live in whatif.py (vault.whatif); they belong to this group.
policy_app.command("simulate")(whatif.simulate_command)
policy_app.command("versions")(whatif.versions_command)
