"""The add-checkpoint rules of C2SP tlog-witness, as a function of a request and the state.

Request body: `old <size>\\n`, up to 63 consistency-proof lines (one base64 hash each),
an empty line, then the checkpoint as a signed note. Answers:

- 200 with the cosignature line, once the new checkpoint is stored;
- 400 for a malformed request, or an old size above the checkpoint's;
- 404 for an origin the witness does not know, 403 when no known log key signed it;
- 409 (`text/x.tlog.size`, body `<latest size>\\n`) when the old size is not the size
  of the latest checkpoint cosigned for that log, or when it is that size and the
  root differs (a fork);
- 422 when the consistency proof does not verify.

Refusals are logged with the origin and sizes only (checkpoints hold no personal data).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from audit.checkpoint import Checkpoint, CheckpointVerifier, split_note
from audit.cosignature import CosignatureSigner
from audit.errors import CheckpointError, ProofError
from audit.merkle import HASH_SIZE
from audit.merkle_verify import verify_consistency
from audit.witness.state import Latest, WitnessState

log = logging.getLogger(__name__)

MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = 128 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")

Clock = Callable[[], int]
"""POSIX seconds now (injected, so tests control cosignature timestamps)."""


@dataclass(frozen=True)
class KnownLog:
    """A log the witness accepts: its origin and the verifier of its checkpoint key."""

    origin: str
    verifier: CheckpointVerifier


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, content type and body."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


class _BadRequestError(Exception):
    pass


def _parse(body: bytes) -> tuple[int, list[bytes], str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadRequestError("request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise _BadRequestError("request has no empty line before the checkpoint")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise _BadRequestError("first line must be 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise _BadRequestError("too many consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            value = base64.b64decode(line.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise _BadRequestError("a proof line is not base64") from None
        if len(value) != HASH_SIZE:
            raise _BadRequestError("a proof line is not a hash")
        proof.append(value)
    return int(match.group(1)), proof, note


class Witness:
    """Cosigns checkpoints of known logs that are consistent with what it saw before."""

    def __init__(
        self, signer: CosignatureSigner, state: WitnessState, logs: list[KnownLog], now: Clock
    ) -> None:
        self._signer = signer
        self._state = state
        self._logs = {known.origin: known for known in logs}
        self._now = now

    @property
    def verifier_key(self) -> str:
        return self._signer.verifier_key

    def latest(self, origin: str) -> Reply:
        """The latest cosigned checkpoint note of `origin` (404 if none)."""
        found = self._state.latest(origin) if origin in self._logs else None
        if found is None:
            return Reply(404, b"no checkpoint for this origin\n")
        return Reply(200, found.note.encode("utf-8"))

    def add_checkpoint(self, body: bytes) -> Reply:
        """Handle one add-checkpoint request."""
        checked = self._checked_request(body)
        if isinstance(checked, Reply):
            return checked
        old, proof, checkpoint, note = checked
        return self._state.compare_and_set(
            checkpoint.origin, lambda latest: self._decide(latest, old, proof, checkpoint, note)
        )

    def _checked_request(self, body: bytes) -> Reply | tuple[int, list[bytes], Checkpoint, str]:
        """The request's parts once parsed and signed by a known log, or the refusal."""
        if len(body) > MAX_REQUEST_BYTES:
            return Reply(413, b"request too large\n")
        try:
            old, proof, note = _parse(body)
            claimed = Checkpoint.parse(split_note(note)[0])
        except (_BadRequestError, CheckpointError) as exc:
            return Reply(400, f"{exc}\n".encode())
        known = self._logs.get(claimed.origin)
        if known is None:
            return Reply(404, b"unknown log origin\n")
        try:
            checkpoint = known.verifier.verify(note)
        except CheckpointError:
            log.warning("witness: checkpoint for %s not signed by its known key", known.origin)
            return Reply(403, b"checkpoint is not signed by a known log key\n")
        if old > checkpoint.size or (old == 0 and proof):
            return Reply(400, b"old size above the checkpoint's, or a proof from size 0\n")
        return old, proof, checkpoint, note

    def _decide(
        self,
        latest: Latest | None,
        old: int,
        proof: list[bytes],
        checkpoint: Checkpoint,
        note: str,
    ) -> tuple[Latest | None, Reply]:
        current = 0 if latest is None else latest.size
        if old != current:
            return None, _conflict(current)
        if latest is not None and old == checkpoint.size:
            if latest.root_hash != checkpoint.root_hash or proof:
                log.error(
                    "witness: REFUSED a fork of %s at size %d (same size, different root)",
                    checkpoint.origin,
                    checkpoint.size,
                )
                return None, _conflict(current)
        elif latest is not None:
            try:
                verify_consistency(
                    old, checkpoint.size, proof, latest.root_hash, checkpoint.root_hash
                )
            except ProofError:
                log.error(  # noqa: TRY400 - a refusal, not a fault: no traceback
                    "witness: REFUSED %s at size %d: not consistent with size %d",
                    checkpoint.origin,
                    checkpoint.size,
                    old,
                )
                return None, Reply(422, b"consistency proof does not verify\n")
        now = self._now()
        line = self._signer.cosign(checkpoint, now)
        stored = Latest(checkpoint.size, checkpoint.root_hash, note + line, now)
        return stored, Reply(200, line.encode("utf-8"))


def _conflict(size: int) -> Reply:
    return Reply(409, f"{size}\n".encode(), SIZE_CONTENT_TYPE)
