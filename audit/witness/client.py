"""What a log uses to talk to a witness: submit a checkpoint, read the latest one."""

from __future__ import annotations

import base64
import http.client
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from audit.checkpoint import Checkpoint
from audit.cosignature import Cosignature, CosignatureVerifier
from audit.errors import AuditError, CheckpointError

DEFAULT_TIMEOUT = 10.0


class WitnessUnavailableError(AuditError):
    """The witness could not be reached or answered with a server error: retry later."""


@dataclass(frozen=True)
class Conflict:
    """409: the witness's latest size for this log (our old size was wrong, or a fork)."""

    size: int


class WitnessRefusedError(AuditError):
    """The witness refused the checkpoint for good: `status` 400, 403, 404 or 422."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"witness refused the checkpoint ({status}): {message}")
        self.status = status


@dataclass(frozen=True)
class WitnessClient:
    """One configured witness: its URL and its cosigner verifier (name and key)."""

    url: str
    verifier: CosignatureVerifier
    timeout: float = DEFAULT_TIMEOUT

    @property
    def name(self) -> str:
        return self.verifier.name

    def add_checkpoint(
        self, old: int, proof: Sequence[bytes], note: str, checkpoint: Checkpoint
    ) -> Cosignature | Conflict:
        """Submit `note` (whose checkpoint is `checkpoint`) with a proof from size `old`.

        Returns the verified cosignature, or `Conflict` with the witness's latest size.
        """
        lines = [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
        status, content_type, body = self._request(
            "POST", "/add-checkpoint", ("".join(lines) + note).encode("utf-8")
        )
        text = body.decode("utf-8", "replace")
        if status == 409:
            size = text.strip()
            if not content_type.startswith("text/x.tlog.size") or not (
                size.isascii() and size.isdigit()
            ):
                raise WitnessUnavailableError("witness sent a malformed conflict")
            return Conflict(int(size))
        if status != 200:
            raise WitnessRefusedError(status, text.strip()[:200])
        for line in text.splitlines(keepends=True):
            try:
                return self.verifier.verify_line(checkpoint, line)
            except CheckpointError:
                continue
        raise WitnessUnavailableError("witness answered without a valid cosignature")

    def latest(self, origin: str) -> str | None:
        """The witness's latest cosigned checkpoint note of `origin` (None if it has none)."""
        status, _type, body = self._request("GET", f"/latest?origin={quote(origin, safe='')}", None)
        if status == 404:
            return None
        if status != 200:
            raise WitnessUnavailableError(f"witness answered {status}")
        return body.decode("utf-8", "replace")

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, str, bytes]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WitnessUnavailableError("witness URL must be http(s)://host[:port][/prefix]")
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = kind(parts.hostname, parts.port, timeout=self.timeout)
        try:
            headers = {"Content-Type": "text/plain; charset=utf-8"} if body is not None else {}
            conn.request(method, parts.path.rstrip("/") + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(1024 * 1024)
            status = response.status
            content_type = response.getheader("Content-Type", "")
        except (OSError, http.client.HTTPException) as exc:
            raise WitnessUnavailableError(f"witness unreachable ({type(exc).__name__})") from None
        finally:
            conn.close()
        if status >= 500:
            raise WitnessUnavailableError(f"witness answered {status}")
        return status, content_type, data
