"""The integrator's memory outside the database: the last checkpoint it signed.

A file in the vault's data dir (`<data-dir>/audit/last-checkpoint`, mode 0600, replaced
atomically) holding the signed note and the compact range at that size. Before it
extends the stored tree, the integrator checks the tree against it: the stored tree
must be that tree, or grow from it by the leaves stored above it. A database
administrator who rewrites, deletes, inserts or reorders entries and recomputes the
stored tree state, or who rewinds the database to an old copy, makes that check fail,
and the integrator refuses instead of signing the rewritten tree.

Several processes sharing one data dir (`serve --workers N`) share the file: each keeps
its own last signed tree in memory and writes the file after each commit, so the file
holds a checkpoint one of them signed, never ahead of the database. Replicas on other
machines each have their own file; the witnesses are the truth they share.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from audit.checkpoint import Checkpoint, CheckpointVerifier
from audit.errors import AuditError, CheckpointError
from audit.merkle import CompactRange

FILE_VERSION = 1


@dataclass(frozen=True)
class LastSigned:
    """The last signed checkpoint and the compact range of its tree."""

    checkpoint: Checkpoint
    tree: CompactRange
    note: str


class LastSignedFile:
    """Reads and atomically replaces the integrator's last-checkpoint file."""

    def __init__(self, path: Path | str, verifier: CheckpointVerifier) -> None:
        self.path = Path(path)
        self._verifier = verifier

    def load(self) -> LastSigned | None:
        """The recorded checkpoint, None if there is no file yet.

        Raises `AuditError` if the file is there but unreadable or not signed by the log's
        key: that is not a first start, and must not be treated as one.
        """
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError:
            raise AuditError("cannot read the audit last-checkpoint file") from None
        try:
            document = json.loads(raw)
            if document.get("version") != FILE_VERSION:
                raise AuditError("unknown audit last-checkpoint file version")
            note = str(document["note"])
            hashes = [base64.b64decode(h, validate=True) for h in document["compact_range"]]
            checkpoint = self._verifier.verify(note)
            tree = CompactRange(checkpoint.size, hashes)
        except (ValueError, KeyError, TypeError, CheckpointError):
            raise AuditError("the audit last-checkpoint file is corrupt or not signed") from None
        if tree.root() != checkpoint.root_hash:
            raise AuditError("the audit last-checkpoint file's tree does not match its root")
        return LastSigned(checkpoint, tree, note)

    def save(self, note: str, tree: CompactRange) -> None:
        """Replace the file (write a temporary file, fsync, rename; mode 0600)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        document = {
            "version": FILE_VERSION,
            "note": note,
            "compact_range": [base64.b64encode(h).decode("ascii") for h in tree.hashes],
        }
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".last-checkpoint.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
