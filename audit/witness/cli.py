"""`customer-vault witness ...`: run a witness, create its key, print its verifier key.

The witness keeps everything in its own directory (`--dir`): `witness.pem` (its Ed25519
key, 0600), `witness.vkey` (its public verifier key, to configure in the vault) and
`witness.db` (the latest checkpoint of each log). It trusts the log keys given on the
command line: `--log-key` (a signed-note verifier key `<origin>+<id>+<key>`) or
`--log-public-key` PEM with `--log-origin`.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from audit.checkpoint import CheckpointVerifier
from audit.cosignature import CosignatureSigner
from audit.errors import AuditError
from audit.signing_keys import generate_signing_key
from audit.witness.protocol import KnownLog, Witness
from audit.witness.server import WitnessServer
from audit.witness.state import WitnessState

app = typer.Typer(
    name="witness", no_args_is_help=True, add_completion=False, help=__doc__.split("\n")[0]
)

KEY_FILE = "witness.pem"
VKEY_FILE = "witness.vkey"
STATE_FILE = "witness.db"

Dir = Annotated[Path, typer.Option("--dir", help="The witness's own directory (key, state).")]
Name = Annotated[
    str, typer.Option("--name", help="The witness's name in cosignatures, e.g. witness.example/w1.")
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def ensure_key(directory: Path, name: str) -> CosignatureSigner:
    """The witness's signer, creating its key (and verifier key file) on first use."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = directory / KEY_FILE
    if not private.exists():
        generate_signing_key(private, directory / "witness.pub.pem")
    signer = CosignatureSigner(private.read_bytes(), name)
    vkey = directory / VKEY_FILE
    if not vkey.exists() or vkey.read_text().strip() != signer.verifier_key:
        vkey.write_text(signer.verifier_key + "\n")
    return signer


@app.command("init")
def init_command(
    directory: Dir,
    name: Name,
    export_vkey: Annotated[
        Path | None,
        typer.Option("--export-vkey", help="Also write the verifier key here (for the vault)."),
    ] = None,
    log_public_key: Annotated[
        Path | None,
        typer.Option(
            "--log-public-key",
            help="Copy this log public key (PEM) into the directory as log.pub.pem.",
        ),
    ] = None,
) -> None:
    """Create the witness key (if missing) and print its verifier key."""
    try:
        signer = ensure_key(directory, name)
        if export_vkey is not None:
            export_vkey.write_text(signer.verifier_key + "\n")
        if log_public_key is not None:
            CheckpointVerifier.from_pem(log_public_key.read_bytes())  # refuse a bad key now
            (directory / "log.pub.pem").write_bytes(log_public_key.read_bytes())
    except (AuditError, OSError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(signer.verifier_key)


def _known_logs(
    log_keys: list[str], log_public_key: Path | None, log_origin: str | None
) -> list[KnownLog]:
    known = []
    for vkey in log_keys:
        # By convention a log's key name is its origin (as the vault signs).
        origin = vkey.strip().split("+", 1)[0]
        known.append(KnownLog(origin, CheckpointVerifier.from_verifier_key(vkey, origin=origin)))
    if log_public_key is not None:
        if not log_origin:
            raise AuditError("--log-public-key needs --log-origin")
        pem = log_public_key.read_bytes()
        known.append(KnownLog(log_origin, CheckpointVerifier.from_pem(pem, origin=log_origin)))
    if not known:
        raise AuditError("give at least one log: --log-key or --log-public-key with --log-origin")
    return known


@app.command("serve")
def serve_command(  # noqa: PLR0917 - typer maps each option to one parameter
    directory: Dir,
    name: Name,
    address: Annotated[str, typer.Option("--address", help="HOST:PORT to listen on.")] = (
        "127.0.0.1:8380"
    ),
    log_key: Annotated[
        list[str] | None, typer.Option("--log-key", help="A log's verifier key (repeatable).")
    ] = None,
    log_public_key: Annotated[
        Path | None, typer.Option("--log-public-key", help="A log's Ed25519 public key (PEM).")
    ] = None,
    log_origin: Annotated[
        str | None, typer.Option("--log-origin", help="The origin of --log-public-key's log.")
    ] = None,
) -> None:
    """Run the witness until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    host, _, port = address.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()):
        raise _fail("--address must be HOST:PORT")
    try:
        signer = ensure_key(directory, name)
        logs = _known_logs(log_key or [], log_public_key, log_origin)
    except (AuditError, OSError) as exc:
        raise _fail(str(exc)) from None
    state = WitnessState(directory / STATE_FILE)
    server = WitnessServer(Witness(signer, state, logs, lambda: int(time.time())), host, int(port))

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    typer.echo(f"customer-vault witness {signer.verifier_key} on {host}:{server.port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        state.close()
