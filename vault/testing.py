"""A real vault in this process, started exactly as `customer-vault serve` starts one.

For tests (this project's integration suite uses nothing else) and for anyone who wants
a vault in their own test suite::

    from vault.testing import running_vault, vault_settings

    with running_vault(vault_settings(tmp_path / "data")) as vault:
        client = vault.client(principal="order-service", roles=("service",))
        client.create({...})

`running_vault` goes through `vault.app.running`, the start-up path `serve` uses (the
same wiring, interceptors, background tasks and shutdown), on a loopback port picked by
the OS, with its own data dir. It first does what an operator does before `serve`:
`customer-vault keys init` (development keys in the data dir) and, on an external
database, `customer-vault migrate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import audit
from vault import key_custody
from vault.api.client import VaultClient
from vault.api.server import VaultServer
from vault.app import VaultApp, running
from vault.clock import Clock, SystemClock
from vault.config import Settings
from vault.identity import TokenIssuer
from vault.principal import Principal
from vault.storage import migrate
from vault.storage.db import create_engine

LOOPBACK_ANY_PORT = "127.0.0.1:0"


def vault_settings(
    data_dir: Path, database_url: str | None = None, **overrides: object
) -> Settings:
    """Settings for a vault under test: `data_dir` of its own, the embedded SQLite
    database unless `database_url` names another, a loopback port picked by the OS, and
    background work (key refresh, re-wrap, audit integration) every 0.2 s instead of
    every minute, so a test sees its effects quickly. `overrides` are `Settings` fields."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "address": LOOPBACK_ANY_PORT,
        "rewrap_interval_seconds": 0.2,
        "key_refresh_interval_seconds": 0.2,
        "audit_integrate_interval_seconds": 0.2,
        "shutdown_grace_seconds": 2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def token_issuer(settings: Settings, clock: Clock | None = None) -> TokenIssuer:
    """An issuer signing with the development token key in `settings`' data dir."""
    return TokenIssuer(
        settings.token_private_key.read_bytes(),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        clock=clock or SystemClock(),
    )


@dataclass
class RunningVault:
    """A started vault: its settings, components and server, and a token issuer."""

    settings: Settings
    app: VaultApp
    server: VaultServer
    issuer: TokenIssuer
    clients: list[VaultClient] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def token(
        self,
        principal: str = "order-service",
        tenant: str = "acme",
        roles: tuple[str, ...] = ("service",),
        ttl: timedelta = timedelta(minutes=10),
        subject: str | None = None,
        **attributes: str,
    ) -> str:
        """A bearer token for that caller (see `vault.testing.principal`); `subject`
        binds a customer token (roles ("customer",)) to its one subject."""
        who = Principal(
            principal, tenant, frozenset(roles), MappingProxyType(dict(attributes)), subject
        )
        return self.issuer.issue(who, ttl)

    def client(self, **token_args: object) -> VaultClient:
        """A client calling with `token(**token_args)`; closed when the vault stops."""
        client = VaultClient(self.address, self.token(**token_args))  # type: ignore[arg-type]
        self.clients.append(client)
        return client


@contextmanager
def running_vault(settings: Settings, clock: Clock | None = None) -> Iterator[RunningVault]:
    """Start a vault as `serve` does (see the module doc), yield it, then stop it: its
    clients are closed, the server stops at once (no grace), and the app closes."""
    key_custody.init_keys(settings)
    if not settings.is_embedded:
        engine = create_engine(settings.resolved_database_url)
        try:
            migrate.upgrade(engine)
            audit.migrate(engine)
        finally:
            engine.dispose()
    with running(settings, clock, grace=0) as (app, server):
        vault = RunningVault(settings, app, server, token_issuer(settings, clock))
        try:
            yield vault
        finally:
            for client in vault.clients:
                client.__exit__(None, None, None)
