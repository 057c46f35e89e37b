"""What `serve` checks before it opens anything: setups it refuses to run.

- Key files and the data dir that other users can read or write (`check_private_modes`).
- A development token key serving beyond this machine (`check_token_key`): a vault that
  trusts a token key whose private half it can read lets anyone who reads the data dir
  mint a token with any role. That is the embedded development default, and it is
  refused on a non-loopback address or with PostgreSQL unless `serve --dev` says it is
  meant.

Each refusal is a `StartupRefusedError` whose message names the path, the mode or the
setting, what is wrong and what to do; never the content of a file.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from vault.config import Settings
from vault.crypto import ed25519_is_key_pair
from vault.errors import VaultError

_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


class StartupRefusedError(VaultError):
    """The vault will not serve with this setup; the message says why and what to do."""


# --- file modes ------------------------------------------------------------------------


def check_private_modes(settings: Settings) -> None:
    """Refuse key files and the data dir that group or others may use.

    The rule is PostgreSQL's for its server key: nothing for others, ever; nothing for
    the group either, except read access to a file or directory that root owns while the
    vault runs as another user, which is how Kubernetes projects a Secret (root-owned,
    group `fsGroup`, mode 0440). A vault running as root gets no such exception.
    """
    platform_owned_ok = os.geteuid() != 0
    for path in _private_paths(settings):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        allowed = 0o050 if platform_owned_ok and info.st_uid == 0 else 0
        loose = stat.S_IMODE(info.st_mode) & 0o077 & ~allowed
        if loose:
            kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
            wanted = "0700" if kind == "directory" else "0600"
            raise StartupRefusedError(
                f"refusing to start: {kind} {path} has mode {stat.S_IMODE(info.st_mode):04o}, "
                f"so other users may read or change it; it holds keys or personal data. "
                f"Run `chmod {wanted} {path}` (and keep it owned by the vault's user)."
            )


def _private_paths(settings: Settings) -> Iterator[Path]:
    """The data dir (when it holds the SQLite database or keys) and every private key."""
    if settings.is_embedded or settings.keys_dir.exists():
        yield settings.data_dir
    yield settings.keys_dir
    if settings.resolved_key_provider == "file":
        yield settings.resolved_key_file
    if settings.pkcs11_pin_file is not None:
        yield settings.pkcs11_pin_file
    yield settings.token_private_key
    yield settings.resolved_audit_signing_key
    yield settings.resolved_receipt_signing_key
    if settings.tls_key is not None:
        yield settings.tls_key


# --- the development token key ---------------------------------------------------------


def check_token_key(settings: Settings, *, dev: bool) -> None:
    """Refuse to serve beyond loopback, or with PostgreSQL, while trusting a token key
    whose private half this process can read, unless `dev` (`serve --dev`)."""
    if dev:
        return
    exposed = []
    if not is_loopback(settings.address):
        exposed.append(f"listens on {settings.address}, beyond this machine")
    if not settings.is_embedded:
        exposed.append("uses PostgreSQL (a shared, production database)")
    if not exposed or not trusts_readable_private_key(settings):
        return
    raise StartupRefusedError(
        f"refusing to start: the vault {' and '.join(exposed)} while it trusts the "
        f"token key {settings.resolved_token_public_key}, whose private half "
        f"{settings.token_private_key} it can read: anyone who can read the data dir can "
        "mint a token with any role. For production, set VAULT_TOKEN_PUBLIC_KEY to your "
        "token issuer's public key and keep the private key off this host (docs/"
        "operations.md, 'Key custody'). For a development vault, pass --dev."
    )


def trusts_readable_private_key(settings: Settings) -> bool:
    """True if the token key the vault trusts is the one in its data dir whose private
    half it can read, or will be: the embedded default generates that pair at start."""
    public, private = settings.resolved_token_public_key, settings.token_private_key
    if not public.exists():
        return (
            settings.token_public_key is None
            and settings.is_embedded
            and settings.generate_dev_keys
        )
    if not os.access(private, os.R_OK):
        return False
    try:
        return ed25519_is_key_pair(private.read_bytes(), public.read_bytes())
    except OSError:
        return False


def is_loopback(address: str) -> bool:
    """True for `127.x.y.z:port`, `[::1]:port`, `localhost:port` and Unix sockets."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.removeprefix("[").removesuffix("]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
