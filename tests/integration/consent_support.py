"""Shared helpers for the consent and rights tests: callers, requests, a movable clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from google.protobuf import timestamp_pb2

from tests.integration.harness import RunningVault
from vault.api.client import VaultClient

SERVICE: dict[str, Any] = {"principal": "order-service", "roles": ("service",)}
MARKETER: dict[str, Any] = {
    "principal": "mkt-1",
    "roles": ("marketing",),
    "department": "marketing",
    "clearance": "2",
}
ANALYST: dict[str, Any] = {"principal": "analyst-1", "roles": ("analyst",)}
AGENT: dict[str, Any] = {"principal": "agent-1", "roles": ("support_agent",), "clearance": "2"}
NOBODY: dict[str, Any] = {"principal": "intern", "roles": ("no_such_role",)}


class MovableClock:
    """A clock the test moves forward (thread-safe; servers read it from many threads)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


EVIDENCE = "ev_7f3a2b5c6d7e2f3a4b5c6d7e2f"
"""An opaque evidence reference (`ev_` + 26 base32 characters)."""


def source(channel: int = cpb.CONSENT_CHANNEL_WEB, **changes: str) -> cpb.ConsentSource:
    values = {"notice_version": "2026-01", "evidence_ref": EVIDENCE, **changes}
    return cpb.ConsentSource(channel=channel, **values)  # type: ignore[arg-type]


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


def grant(
    client: VaultClient, subject_id: str, *purposes: str, expires_at: datetime | None = None
) -> cpb.GrantConsentResponse:
    request = cpb.GrantConsentRequest(
        subject_id=subject_id,
        purposes=list(purposes),
        source=source(),
        expires_at=ts(expires_at) if expires_at else None,
    )
    response: cpb.GrantConsentResponse = client.call(client.consent, "GrantConsent", request)
    return response


def withdraw(client: VaultClient, subject_id: str, *purposes: str) -> cpb.WithdrawConsentResponse:
    request = cpb.WithdrawConsentRequest(
        subject_id=subject_id, purposes=list(purposes), source=source()
    )
    response: cpb.WithdrawConsentResponse = client.call(client.consent, "WithdrawConsent", request)
    return response


def opt_out(
    client: VaultClient, subject_id: str, *scopes: str, channel: int = cpb.CONSENT_CHANNEL_WEB
) -> cpb.OptOutResponse:
    request = cpb.OptOutRequest(subject_id=subject_id, scopes=list(scopes), source=source(channel))
    response: cpb.OptOutResponse = client.call(client.consent, "OptOut", request)
    return response


def withheld(view: pb.SubjectView) -> dict[str, str]:
    """Field -> reason for every withheld field of a view."""
    return {w.field: w.reason for w in view.withheld}


def ledger_rows(vault: RunningVault) -> int:
    with vault.app.db.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM consent_events")).scalar_one())


def receipt_rows(vault: RunningVault) -> int:
    with vault.app.db.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM consent_receipts")).scalar_one())
