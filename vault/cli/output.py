"""The output options every command shares: `--format json|table` and `--output PATH`.

`table` is for people (rich tables, 80 columns and up), `json` for programs (protobuf's
JSON mapping for a vault response, a plain document otherwise). `--output` writes what
the command produces (the document, package, receipt or checkpoint its help names) to a
file instead of stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer


class Format(StrEnum):
    """How a command prints its result."""

    table = "table"
    json = "json"


FormatOpt = Annotated[
    Format,
    typer.Option(
        "--format",
        envvar="CUSTOMER_VAULT_FORMAT",
        help="table (for people) or json (for programs).",
    ),
]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the result to this file, not stdout.")
]


@contextmanager
def open_output(output: Path | None) -> Iterator[TextIO]:
    """A text stream on `output`, or stdout (left open), for output written piecewise."""
    if output is None:
        yield sys.stdout
        return
    with output.open("w", encoding="utf-8") as file:
        yield file


def write(text: str, output: Path | None) -> None:
    """`text` (plus a newline) to `output`, or to stdout."""
    if output is None:
        sys.stdout.write(text + "\n")
        return
    output.write_text(text + "\n", encoding="utf-8")
    from rich.console import Console

    Console(stderr=True).print(f"wrote {output}", soft_wrap=True, highlight=False)


def print_message(
    message: Any,
    fmt: Format,
    output: Path | None = None,
    table: Callable[[Any], Any] | None = None,
) -> None:
    """A vault response: its JSON mapping, or `table(message)` (a rich renderable; by
    default one row per field)."""
    from customer_vault_client.messages import to_json

    if fmt is Format.json:
        write(to_json(message), output)
        return
    render(table(message) if table else message_table(message), output)


def print_document(
    document: Mapping[str, Any], fmt: Format, output: Path | None = None, table: Any = None
) -> None:
    """A plain document: JSON, or `table` (default: one row per key)."""
    if fmt is Format.json:
        write(json.dumps(document, indent=2, ensure_ascii=False, default=str), output)
        return
    if table is None:
        from rich.table import Table

        table = Table("field", "value")
        for key, value in document.items():
            table.add_row(str(key), _text(value))
    render(table, output)


def render(renderable: Any, output: Path | None = None) -> None:
    """A rich renderable on stdout, or into `output` as plain text."""
    from rich.console import Console

    if output is None:
        Console().print(renderable)
        return
    with output.open("w", encoding="utf-8") as file:
        Console(file=file, width=120, no_color=True).print(renderable)


def message_table(message: Any) -> Any:
    """One row per set field of a vault response (nested values as compact JSON)."""
    from customer_vault_client.messages import to_dict
    from rich.table import Table

    table = Table("field", "value", title=message.DESCRIPTOR.name)
    for key, value in to_dict(message).items():
        table.add_row(key, _text(value))
    return table


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def rows_table(response: Any, field: str) -> Any:
    """The repeated message `field` of a response as a table: one row per item, one
    column per key any item has (nested values as compact JSON); the next page's token
    as the caption when there is one."""
    from customer_vault_client.messages import to_dict
    from rich.table import Table

    items = to_dict(response).get(_camel(field), [])
    columns = list(dict.fromkeys(key for item in items for key in item))
    table = Table(*columns, title=f"{len(items)} {field}")
    for item in items:
        table.add_row(*(_text(item.get(column, "")) for column in columns))
    token = getattr(response, "next_page_token", "")
    if token:
        table.caption = f"more: add --page-token {token}"
    return table


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
