"""A real vault on a loopback port, in this process, with the production interceptors."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import grpc
import sqlalchemy as sa

import audit
from tests import pii_watch
from vault import key_custody
from vault.api.client import VaultClient
from vault.api.gen.customervault.v1 import vault_pb2_grpc
from vault.api.server import VaultServer
from vault.app import VaultApp
from vault.clock import Clock, SystemClock
from vault.config import Settings
from vault.identity import TokenIssuer
from vault.principal import Principal
from vault.storage import migrate


@dataclass
class RunningVault:
    """A started server plus helpers to mint tokens and open clients."""

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
        **attributes: str,
    ) -> str:
        who = Principal(principal, tenant, frozenset(roles), MappingProxyType(dict(attributes)))
        return self.issuer.issue(who, ttl)

    def client(self, **token_args: object) -> VaultClient:
        client = VaultClient(self.address, self.token(**token_args))  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def stub(self) -> tuple[vault_pb2_grpc.VaultServiceStub, grpc.Channel]:
        channel = grpc.insecure_channel(self.address)
        return vault_pb2_grpc.VaultServiceStub(channel), channel


def settings_for(data_dir: Path, database_url: str | None, **overrides: object) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        address="127.0.0.1:0",
        rewrap_interval_seconds=0.2,
        key_refresh_interval_seconds=0.2,
        audit_integrate_interval_seconds=0.2,
        shutdown_grace_seconds=2,
        **overrides,  # type: ignore[arg-type]
    )


@contextmanager
def running_vault(settings: Settings, clock: Clock | None = None) -> Iterator[RunningVault]:
    """Start the vault the way `serve` does, yield it, then shut it down."""
    key_custody.init_keys(settings)
    if not settings.is_embedded:
        from vault.storage.db import create_engine

        engine = create_engine(settings.resolved_database_url)
        migrate.upgrade(engine)
        audit.migrate(engine)
        engine.dispose()
    app = VaultApp.open(settings, clock=clock)
    server = app.build_server()
    server.start()
    app.start_background()
    server.mark_serving()
    issuer = TokenIssuer(
        settings.token_private_key.read_bytes(),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        clock=clock or SystemClock(),
    )
    vault = RunningVault(settings, app, server, issuer)
    try:
        yield vault
    finally:
        for client in vault.clients:
            client.__exit__(None, None, None)
        server.stop(0)
        pii_watch.export_audit(app.db.engine)
        app.close()


def shreddable_copies(engine: sa.engine.Engine, subject_ids: Sequence[str]) -> list[bytes]:
    """What erasing or anonymizing these subjects destroys, as it lies in the database
    files: the wrapped data keys, the sealed fields' ciphertexts (base64 inside the
    stored JSON), the blind-index digests and the token strings."""
    found: list[bytes] = []
    ids = list(subject_ids)
    with engine.connect() as conn:
        query = sa.text("SELECT wrapped_dek, fields FROM subjects WHERE id IN :ids")
        for wrapped, blob in conn.execute(_expanding(query), {"ids": ids}):
            found.append(bytes(wrapped))
            found += [text.encode() for text in _strings(json.loads(bytes(blob)))]
        for table, column in (("blind_indexes", "digest"), ("tokens", "token")):
            query = sa.text(f"SELECT {column} FROM {table} WHERE subject_id IN :ids")
            rows = conn.execute(_expanding(query), {"ids": ids})
            found += [_raw(value) for (value,) in rows]
    return found


def _expanding(query: sa.TextClause) -> sa.TextClause:
    return query.bindparams(sa.bindparam("ids", expanding=True))


def _raw(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _strings(value: object) -> Iterator[str]:
    """The long strings (ciphertexts) anywhere in decoded JSON."""
    if isinstance(value, str):
        if len(value) >= 24:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
