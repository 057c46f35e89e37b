"""The one error policy loading raises: a file in `policies/` that cannot be used."""

from __future__ import annotations

from vault.errors import VaultError


class PolicyConfigError(VaultError):
    """A policy file is malformed or inconsistent; the message names the file and line.

    Raised at start-up (the server refuses to start) and by a reload (the engine keeps
    the policy it had). Policy files hold no personal data, so quoting a token from one
    is safe.
    """

    def __init__(self, file: str, line: int | None, detail: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {detail}")
        self.file = file
        self.line = line
        self.detail = detail
