"""What the web application needs to know: where the vault is, and what to trust."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path


@dataclass(frozen=True)
class WebSettings:
    """`vault_address` is the gRPC HOST:PORT every page calls; `audit_public_key` the
    log's Ed25519 key (PEM) the console checks checkpoints and proofs with itself;
    `vault_ca_file` a CA bundle to reach the vault over TLS; `secure_cookies` forces the
    Secure flag (it is set anyway on requests that arrive over https);
    `restricted_fields` the data dictionary's restricted fields (for the activity page)."""

    vault_address: str
    audit_public_key: Path | None = None
    vault_ca_file: Path | None = None
    secure_cookies: bool = False
    session_lifetime: timedelta = timedelta(hours=8)
    restricted_fields: frozenset[str] = frozenset()
    receipt_public_key: Path | None = None
    """The vault's receipt key (PEM), shown on the privacy center's verification page."""
    witness_keys: tuple[str, ...] = ()
    """The audit log's witnesses' verifier keys (`<name>+<hex id>+<base64 key>`): the
    log-integrity page checks each stored cosignature with them."""
    privacy_notice_version: str = "2026-01"
    """The version of the privacy notice the privacy center shows (recorded with every
    consent change the customer makes there)."""
