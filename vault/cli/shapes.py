"""Options and tables the client commands share: who reads (view, purpose, why) and how a
subject is shown."""

from __future__ import annotations

from typing import Annotated, Any

import typer

View = Annotated[str, typer.Option(help="The masked view to read through.")]
Purpose = Annotated[str, typer.Option(help="Why you read (a declared purpose).")]
Justification = Annotated[
    str,
    typer.Option(
        help="Why, citing the case (required for full clear-text views, reveal, detokenize "
        "and legal-obligation purposes; audited, no personal data)."
    ),
]


def state_name(meta: Any) -> str:
    from customer_vault_client.messages import enum_name

    return enum_name(meta, "state").removeprefix("SUBJECT_STATE_").lower()


def meta_line(meta: Any) -> str:
    """`<id> version <n> <state>`: a subject's id, version and state."""
    return f"{meta.subject_id} version {meta.version} {state_name(meta)}"


def view_table(view: Any) -> Any:
    """A subject read through a view: one row per field (value, disclosure, writer)."""
    from customer_vault_client.messages import enum_name
    from rich.markup import escape
    from rich.table import Table

    meta = view.meta
    title = f"{meta.subject_id}  v{meta.version}  {state_name(meta)}  view={view.view}"
    table = Table("field", "value", "disclosure", "written by", title=escape(title))
    for name in sorted(view.fields):
        f = view.fields[name]
        shown = enum_name(f, "disclosure").removeprefix("DISCLOSURE_").lower()
        table.add_row(
            name, escape(f.value), f"{shown} {f.strategy}".strip(), f.provenance.written_by
        )
    for withheld in view.withheld:
        table.add_row(withheld.field, "-", f"withheld ({withheld.reason})", "")
    return table


def value_table(response: Any) -> Any:
    """A single revealed or detokenized value (RevealField, Detokenize)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("subject", "field", "value")
    table.add_row(response.subject_id, response.field, escape(response.value.value))
    return table
