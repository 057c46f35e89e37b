"""`customer-vault keys ...`: key custody on the data dir and the database (local: no
running vault needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vault.cli.options import DatabaseUrl, DataDir, die, settings
from vault.cli.output import Format, FormatOpt, print_document
from vault.errors import VaultError

if TYPE_CHECKING:
    from vault.config import Settings

keys_app = typer.Typer(no_args_is_help=True, help="Key custody: create, rotate, re-wrap, retire.")
console = Console()


@keys_app.command("init")
def keys_init(data_dir: DataDir = None) -> None:
    """Create the key file and signing keys under the data dir (never commit them)."""
    from vault.key_custody import init_keys

    created = init_keys(settings(data_dir=data_dir))
    for path in created:
        console.print(f"created {path}")
    if not created:
        console.print("all keys already exist; nothing changed")


def _db(cfg: Settings) -> Any:
    from vault.storage.db import Database, create_engine

    return Database(create_engine(cfg.resolved_database_url))


@keys_app.command("rotate")
def keys_rotate(data_dir: DataDir = None) -> None:
    """Add a new KEK version and make it active; running vaults re-wrap in the background."""
    from vault import key_custody

    cfg = settings(data_dir=data_dir)
    with key_custody.managed_provider(cfg) as provider:
        version = provider.add_kek_version()
    console.print(f"KEK v{version} is now active; data keys are re-wrapped in the background")


@keys_app.command("status")
def keys_status(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, fmt: FormatOpt = Format.table
) -> None:
    """KEK versions and how many data keys each one wraps; blind-index and token key
    versions and how many digests and tokens each one made."""
    from vault import key_custody

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db, provider = _db(cfg), key_custody.provider_for(cfg)
    status = key_custody.status(db, provider)
    secrets = {
        purpose: key_custody.secret_status(db, provider, purpose)
        for purpose in (key_custody.BLIND_INDEX, key_custody.TOKEN)
    }
    if fmt is Format.json:
        document = {
            "kek": {
                "active_version": status.active_version,
                "versions": list(status.versions),
                "data_keys_by_version": {
                    str(v) if v is not None else "shredded": n
                    for v, n in status.data_keys_by_version.items()
                },
                "pending_rewrap": status.pending_rewrap,
            },
            **{
                purpose: {
                    "active_version": secret.active_version,
                    "versions": list(secret.versions),
                    "rows_by_version": {str(v): n for v, n in secret.rows_by_version.items()},
                    "pending": secret.pending,
                }
                for purpose, secret in secrets.items()
            },
        }
        print_document(document, fmt)
        return
    table = Table("KEK version", "state", "data keys")
    for version in status.versions:
        state = "active" if version == status.active_version else "old"
        table.add_row(f"v{version}", state, str(status.data_keys_by_version.get(version, 0)))
    table.add_row("-", "shredded", str(status.data_keys_by_version.get(None, 0)))
    console.print(table)
    console.print(f"pending re-wrap: {status.pending_rewrap}")
    for purpose, rows in ((key_custody.BLIND_INDEX, "digests"), (key_custody.TOKEN, "tokens")):
        secret = secrets[purpose]
        table = Table(f"{purpose} key version", "state", rows)
        for version in sorted({*secret.versions, *secret.rows_by_version}):
            state = "active" if version == secret.active_version else "old"
            if version not in secret.versions:
                state = "retired"
            table.add_row(f"v{version}", state, str(secret.rows_by_version.get(version, 0)))
        console.print(table)
    console.print(f"pending re-index: {secrets[key_custody.BLIND_INDEX].pending} digests")


@keys_app.command("rewrap")
def keys_rewrap(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    batch_size: Annotated[int, typer.Option(help="Data keys per transaction.")] = 1000,
) -> None:
    """Re-wrap every data key under the active KEK now (what servers do in the background)."""
    from rich.progress import Progress

    from vault import key_custody
    from vault.crypto import KeyRing

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db, provider = _db(cfg), key_custody.provider_for(cfg)
    keyring = KeyRing(provider)
    total = key_custody.status(db, provider).pending_rewrap
    with Progress(console=console) as progress:
        task = progress.add_task("re-wrapping data keys", total=total)
        while moved := key_custody.rewrap_batch(db, keyring, batch_size):
            progress.advance(task, moved)
    console.print("[green]every data key is wrapped by the active KEK[/green]")


@keys_app.command("retire")
def keys_retire(version: int, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Remove an old KEK version once no data key uses it."""
    from vault import key_custody

    cfg = settings(data_dir=data_dir, database_url=database_url)
    try:
        with key_custody.managed_provider(cfg) as provider:
            key_custody.retire(_db(cfg), provider, version)
    except VaultError as exc:
        raise die(exc.message) from None
    console.print(f"KEK v{version} retired")


@keys_app.command("rotate-blind-index")
def keys_rotate_blind_index(data_dir: DataDir = None) -> None:
    """Add a new blind-index key version and make it active; running vaults re-index in
    the background (searches look under every version meanwhile)."""
    from vault import key_custody

    cfg = settings(data_dir=data_dir)
    with key_custody.managed_provider(cfg) as provider:
        version = provider.add_root_version(key_custody.BLIND_INDEX)
    console.print(f"blind-index key v{version} is now active; digests are re-indexed")
    console.print("in the background, or now with `customer-vault keys reindex`")


@keys_app.command("reindex")
def keys_reindex(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    batch_size: Annotated[int, typer.Option(help="Subjects per transaction.")] = 500,
) -> None:
    """Re-index every blind index under the active key version now (what servers do in
    the background). Safe to stop and run again: it resumes where digests are stale."""
    from rich.progress import Progress

    from vault import key_custody
    from vault.crypto import KeyRing
    from vault.fields.dictionary import DataDictionary
    from vault.records.cipher import RecordCipher
    from vault.records.reindex import Reindexer

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db, provider = _db(cfg), key_custody.provider_for(cfg)
    dictionary = DataDictionary.from_file(cfg.policies_dir / "data_dictionary.yaml")
    reindexer = Reindexer(db, RecordCipher(KeyRing(provider), dictionary.index_forms), batch_size)
    total = key_custody.secret_status(db, provider, key_custody.BLIND_INDEX).pending
    failed, after = 0, ""
    with Progress(console=console) as progress:
        task = progress.add_task("re-indexing digests", total=total)
        while True:
            done = reindexer.batch(after)
            failed += done.failed
            progress.advance(task, done.reindexed + done.dropped)
            if not done.last_id:
                break
            after = done.last_id
    if failed:
        raise die(f"{failed} subjects could not be opened and keep their old digests")
    console.print("[green]every digest is under the active blind-index key[/green]")


@keys_app.command("upgrade-seals")
def keys_upgrade_seals(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    batch_size: Annotated[int, typer.Option(help="Subjects per transaction.")] = 500,
) -> None:
    """Re-seal every value still in sealed format 1 in format 2 (bound to its version and
    writer, with a field-set tag). Safe to stop and run again; online."""
    from vault import key_custody
    from vault.crypto import KeyRing
    from vault.fields.dictionary import DataDictionary
    from vault.records.cipher import RecordCipher
    from vault.records.reindex import upgrade_seals

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db, provider = _db(cfg), key_custody.provider_for(cfg)
    dictionary = DataDictionary.from_file(cfg.policies_dir / "data_dictionary.yaml")
    sealing = RecordCipher(KeyRing(provider), dictionary.index_forms)
    upgraded = failed = 0
    after = ""
    while True:
        done = upgrade_seals(db, sealing, after, batch_size)
        upgraded, failed, after = upgraded + done.upgraded, failed + done.failed, done.last_id
        if not after:
            break
    console.print(f"{upgraded} subjects re-sealed in format 2")
    if failed:
        raise die(f"{failed} subjects could not be opened and keep their format-1 values")


@keys_app.command("retire-blind-index")
def keys_retire_blind_index(
    version: int, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Remove an old blind-index key version once no digest uses it."""
    from vault import key_custody

    cfg = settings(data_dir=data_dir, database_url=database_url)
    try:
        with key_custody.managed_provider(cfg) as provider:
            key_custody.retire_blind_index_version(_db(cfg), provider, version)
    except VaultError as exc:
        raise die(exc.message) from None
    console.print(f"blind-index key v{version} retired")


@keys_app.command("rotate-token")
def keys_rotate_token(data_dir: DataDir = None) -> None:
    """Add a new token key version and make it active: new tokens carry it, and
    deterministic tokens of the same value differ from those of older versions."""
    from vault import key_custody

    cfg = settings(data_dir=data_dir)
    with key_custody.managed_provider(cfg) as provider:
        version = provider.add_root_version(key_custody.TOKEN)
    console.print(f"token key v{version} is now active; older tokens still detokenize")
    console.print("until their version is retired (`customer-vault keys retire-token`)")


@keys_app.command("retire-token")
def keys_retire_token(
    version: int,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Retire even though tokens of it are recorded.")
    ] = False,
) -> None:
    """Remove an old token key version: every token minted under it stops detokenizing."""
    from vault import key_custody

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db = _db(cfg)
    try:
        with key_custody.managed_provider(cfg) as provider:
            rows = key_custody.secret_status(db, provider, key_custody.TOKEN).rows_by_version
            live = rows.get(version, 0)
            if live and not yes:
                raise die(f"{live} tokens of v{version} would stop working; add --yes to retire")
            forgotten = key_custody.retire_token_version(db, provider, version)
    except VaultError as exc:
        raise die(exc.message) from None
    console.print(f"token key v{version} retired; {forgotten} tokens no longer detokenize")
