"""`customer-vault subjects reveal | tokenize | detokenize`: one field in clear, or a
token standing for it (mounted on the subjects group)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vault.cli.output import Format, FormatOpt, Output, print_message
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call
from vault.cli.shapes import Justification, Purpose, value_table

Field = Annotated[str, typer.Option(help="A data-dictionary field, e.g. national_id.")]


def reveal(
    subject_id: str,
    field: Field,
    purpose: Purpose,
    justification: Justification,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """One field of a customer in clear (break-glass: justified and audited)."""
    response = call(
        address,
        token,
        "vault",
        "RevealField",
        subjectId=subject_id,
        field=field,
        purpose=purpose,
        justification=justification,
    )
    print_message(response, fmt, output, table=value_table)


def tokenize(
    subject_id: str,
    field: Field,
    purpose: Purpose,
    kind: Annotated[
        str, typer.Option(help="deterministic (joins across systems) or random.")
    ] = "deterministic",
    justification: Justification = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """A token standing for one field of a customer (detokenize it later)."""
    response = call(
        address,
        token,
        "vault",
        "Tokenize",
        subjectId=subject_id,
        field=field,
        kind=f"TOKEN_KIND_{kind.upper()}",
        purpose=purpose,
        justification=justification,
    )
    print_message(response, fmt, output, table=_token_line)


def _token_line(response: Any) -> str:
    return str(response.token)


def detokenize(
    value_token: Annotated[str, typer.Argument(metavar="TOKEN", help="A token from tokenize.")],
    purpose: Purpose,
    justification: Justification,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """The field value a token stands for (justified and audited)."""
    response = call(
        address,
        token,
        "vault",
        "Detokenize",
        token=value_token,
        purpose=purpose,
        justification=justification,
    )
    print_message(response, fmt, output, table=value_table)
