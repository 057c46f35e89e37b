"""`customer-vault audit entry | inclusion-proof | consistency-proof | verify-log`: one
entry, the Merkle proofs, and the vault's own check of its log (mounted on the audit
group). For a check that trusts nothing the vault says, `audit verify` runs offline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from vault.cli.output import Format, FormatOpt, Output, print_message
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call, stream


def entry(
    index: Annotated[int, typer.Argument(help="The entry's leaf index.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """One audit entry by its leaf index."""
    print_message(call(address, token, "audit", "GetEntry", index=index).entry, fmt, output)


def inclusion_proof(
    index: Annotated[int, typer.Argument(help="The entry's leaf index.")],
    tree_size: Annotated[int, typer.Option(help="The tree size of a checkpoint you hold.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """The Merkle proof that an entry is in the log of a checkpoint (RFC 6962)."""
    response = call(address, token, "audit", "GetInclusionProof", index=index, treeSize=tree_size)
    print_message(response, fmt, output)


def consistency_proof(
    first_size: Annotated[int, typer.Option(help="The older checkpoint's tree size.")],
    second_size: Annotated[int, typer.Option(help="The newer checkpoint's tree size.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """The Merkle proof that a newer checkpoint extends an older one (append-only)."""
    response = call(
        address,
        token,
        "audit",
        "GetConsistencyProof",
        firstSize=first_size,
        secondSize=second_size,
    )
    print_message(response, fmt, output)


def verify_log(
    trusted_checkpoint: Annotated[
        str, typer.Option(help="A checkpoint note you kept: the log must extend it.")
    ] = "",
    progress: Annotated[
        bool, typer.Option(help="Report progress while the vault checks (streamed).")
    ] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Ask the vault to check its whole log (every leaf, root, MAC and checkpoint);
    exit 1 when it finds a problem."""
    fields: dict[str, Any] = {"trustedCheckpoint": trusted_checkpoint}
    if not progress:
        result = call(address, token, "audit", "VerifyLog", **fields)
    else:
        from rich.console import Console

        err = Console(stderr=True)
        result = None
        for step in stream(address, token, "audit", "VerifyLogWithProgress", **fields):
            if step.HasField("result"):
                result = step.result
            elif fmt is Format.table:
                err.print(f"checked {step.checked} of {step.total}", highlight=False)
        if result is None:
            raise typer.Exit(1)
    print_message(result, fmt, output)
    raise typer.Exit(0 if _ok(result) else 1)


def _ok(result: Any) -> bool:
    return bool(result.ok)


COMMANDS: dict[str, Callable[..., None]] = {
    "entry": entry,
    "inclusion-proof": inclusion_proof,
    "consistency-proof": consistency_proof,
    "verify-log": verify_log,
}
