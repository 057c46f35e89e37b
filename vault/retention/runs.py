"""Past retention runs, as one tenant sees them: when each ran, what it did to the
tenant's subjects and the k-anonymity of the tenant's anonymized records when it ended.

Read from the reports stored in `retention_runs` (one per finished run, newest first).
A run stored before reports were kept per tenant shows no tenant part (`part` None):
its stored totals cover every tenant, so they are not shown to one. Nothing of another
tenant's part is ever returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.retention.report import TenantReport
from vault.storage.retention_tables import runs


@dataclass(frozen=True)
class PastRun:
    run_id: str
    started_at: int
    finished_at: int
    interrupted: bool
    part: TenantReport | None


def page(
    conn: Connection, tenant: str, *, before: tuple[int, str] | None, limit: int
) -> list[PastRun]:
    """Up to `limit` runs finished before the (finished_at, id) key `before`, newest first."""
    c = runs.c
    query = sa.select(c.id, c.started_at, c.finished_at, c.report).order_by(
        c.finished_at.desc(), c.id.desc()
    )
    if before is not None:
        query = query.where(sa.tuple_(c.finished_at, c.id) < before)
    found = []
    for run_id, started, finished, text in conn.execute(query.limit(limit)):
        report = json.loads(text)
        tenants = report.get("tenants")
        part = None
        if isinstance(tenants, dict):
            # A tenant without subjects is not in the report: nothing happened to it.
            own = tenants.get(tenant)
            part = TenantReport.from_dict(own) if isinstance(own, dict) else TenantReport()
        found.append(
            PastRun(str(run_id), int(started), int(finished), bool(report.get("interrupted")), part)
        )
    return found
