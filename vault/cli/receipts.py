"""`customer-vault consent verify-receipt | verify-package`: offline checks of what the
vault signs with its receipt key (mounted on the consent group)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vault.cli.options import DataDir, settings
from vault.cli.output import Format, FormatOpt, print_document


def _verified(check: Any, file: Path, key: Path | None, data_dir: Path | None) -> Any:
    """What `check` finds in `file` with the receipt key; exits 2 (unreadable) or 1
    (invalid) with a message on stderr."""
    from rich.console import Console

    from vault.errors import VaultError

    err = Console(stderr=True)
    key = key or settings(data_dir=data_dir).receipt_public_key
    try:
        return check(file.read_bytes(), key.read_bytes())
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot read {exc.filename}")
        raise typer.Exit(2) from None
    except VaultError as exc:
        err.print(f"[red]INVALID[/red] {exc.message}")
        raise typer.Exit(1) from None


PublicKey = Annotated[
    Path | None, typer.Option(help="Receipt public key PEM (default: the data dir's).")
]


def verify_receipt(
    file: Annotated[Path, typer.Argument(help="The receipt document.")],
    public_key: PublicKey = None,
    data_dir: DataDir = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Verify a consent receipt offline: exit 0 when it is intact and signed by the key."""
    from vault.consent.receipts import verify_document

    found = _verified(verify_document, file, public_key, data_dir)
    purposes = [p["purpose"] for s in found.get("services", []) for p in s.get("purposes", [])]
    document = {
        "valid": True,
        "receipt_id": found.get("consentReceiptID"),
        "subject_id": found.get("piiPrincipalId"),
        "purposes": purposes,
    }
    print_document(
        document,
        fmt,
        table=f"[green]valid[/green] receipt {document['receipt_id']} for "
        f"{document['subject_id']}: {', '.join(purposes)}",
    )


def verify_package(
    file: Annotated[Path, typer.Argument(help="The signed access package (JSON).")],
    public_key: PublicKey = None,
    data_dir: DataDir = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Verify a signed access package offline (the privacy center's download, or
    ExportSubjectData's signed_package): exit 0 when intact and signed by the key."""
    from vault.consent.receipts import verify_package as verify

    found = _verified(verify, file, public_key, data_dir)
    document = {
        "valid": True,
        "subject_id": found.get("subject", {}).get("subject_id", "?"),
        "generated_at": found.get("generated_at"),
    }
    print_document(
        document,
        fmt,
        table=f"[green]valid[/green] access package for {document['subject_id']}, "
        f"generated {document['generated_at']}",
    )
