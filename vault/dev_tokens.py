"""Development tokens: `customer-vault token issue`, signed with the data dir's own key.

Whoever can read `<data-dir>/keys/token_signing.pem` can mint a token for any principal,
role and tenant, so issuing is a development tool, and each token it mints is recorded
in the vault's audit log when that log can be reached: who issued it (the local operating
system account, by uid), for which principal, roles and tenant, until when, and whether
it is bound to a certificate. Attribute values and the token itself are never recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

import audit
from vault.audit_actions import AuditAction
from vault.clock import Clock
from vault.config import Settings
from vault.identity import TokenIssuer
from vault.principal import Principal
from vault.storage.db import create_engine

ACTION = AuditAction.ISSUE_DEVELOPMENT_TOKEN
"""The audit action of a development token issued by the CLI."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    recorded: bool
    """True if the issue is in the audit log; else `not_recorded` says why."""
    not_recorded: str = ""


def issue(
    settings: Settings,
    principal: Principal,
    ttl: timedelta,
    clock: Clock,
    *,
    bound_to: str | None = None,
) -> IssuedToken:
    """Sign a token with the data dir's key, then record the issue in the audit log.

    `ValueError` for a lifetime or principal the issuer refuses (nothing is recorded).
    """
    issuer = TokenIssuer(
        settings.token_private_key.read_bytes(),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        clock=clock,
    )
    now = clock.now()
    token = issuer.issue(principal, ttl, bound_to=bound_to)
    entry = _entry(principal, now, now + ttl, bound=bound_to is not None)
    not_recorded = _record(settings, entry)
    return IssuedToken(token, now + ttl, recorded=not not_recorded, not_recorded=not_recorded)


def operator() -> str:
    """The audit actor for the local operator: the OS account's uid, not its name."""
    return f"local-operator:uid:{os.getuid()}"


def _entry(
    principal: Principal, now: datetime, expires: datetime, *, bound: bool
) -> audit.AuditEntry:
    return audit.AuditEntry(
        time=now,
        actor=operator(),
        tenant=principal.tenant,
        action=ACTION,
        decision=audit.ALLOW,
        result_code="OK",
        reason="development token issued with the data dir's signing key",
        extra={
            "token_principal": principal.id,
            "token_roles": ",".join(sorted(principal.roles)),
            "token_tenant": principal.tenant,
            "token_expires_at": expires.isoformat(timespec="seconds"),
            "token_bound_to_certificate": "yes" if bound else "no",
            "token_attribute_names": ",".join(sorted(principal.attributes)),
        },
    )


def _record(settings: Settings, entry: audit.AuditEntry) -> str:
    """Append `entry`; '' on success, else why it could not be (never raises)."""
    url = settings.resolved_database_url
    if settings.is_embedded and not _sqlite_file(url).exists():
        return "no audit log in this data dir yet (the vault has not run here)"
    # Every entry the vault writes carries its MAC (the integrator refuses one without,
    # and so would stop signing the log): without the key, nothing is recorded.
    try:
        mac = audit.EntryMac.from_file(settings.resolved_audit_mac_key)
    except (OSError, audit.KeyFormatError):
        return "the audit entry MAC key could not be read (run `customer-vault keys init`)"
    engine = create_engine(url, pool_size=1, lock_timeout=settings.db_lock_timeout_seconds)
    audit.use_entry_mac(engine, mac)
    try:
        if not audit.is_current(engine):
            return "the audit log's schema is not current (run `customer-vault migrate`)"
        with engine.begin() as conn:
            audit.append_in(conn, [entry])
    except sa.exc.SQLAlchemyError as exc:
        return f"the audit log could not be reached ({type(exc).__name__})"
    finally:
        engine.dispose()
    return ""


def _sqlite_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))
