"""ListRetentionRuns: each finished run's report, kept per tenant, newest first, with the
k-anonymity of the tenant's anonymized records when the run ended; a tenant sees only
its own part; a run stored before per-tenant reports shows none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from customer_vault_client.gen.customervault.v1 import retention_pb2 as rpb

from tests.integration.harness import RunningVault
from tests.integration.retention.helpers import (
    DEFAULT_DAYS,
    NOTICE_DAYS,
    TestClock,
    admin,
    customer,
    retention_vault,
)
from vault.api.client import VaultClientError
from vault.storage.retention_tables import runs


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def rv(tmp_path: Path, database_url: str | None, clock: TestClock) -> Iterator[RunningVault]:
    with retention_vault(tmp_path / "data", database_url, clock) as running:
        yield running


def _runs(
    vault: RunningVault, tenant: str = "acme", **kwargs: object
) -> rpb.ListRetentionRunsResponse:
    client = admin(vault, tenant)
    request = rpb.ListRetentionRunsRequest(**kwargs)  # type: ignore[arg-type]
    response: rpb.ListRetentionRunsResponse = client.call(
        client.retention, "ListRetentionRuns", request
    )
    return response


def test_each_run_keeps_its_tenant_counts_and_k_anonymity(
    rv: RunningVault, clock: TestClock
) -> None:
    service = rv.client()
    acme = [service.create(customer(n)).subject_id for n in range(3)]
    globex = rv.client(tenant="globex")  # type: ignore[arg-type]
    globex.create(customer(9, "g"))
    job = rv.app.retention_job
    clock.advance(timedelta(days=DEFAULT_DAYS - NOTICE_DAYS + 1))
    first = job.run()  # acme's three are noticed (and globex's one, on its shorter rule)
    clock.advance(timedelta(days=NOTICE_DAYS + 1))
    rv.client().record_activity(acme[0])
    second = job.run()  # acme's other two are anonymized

    page = _runs(rv)
    assert [r.run_id for r in page.runs] == [second.run_id, first.run_id]
    latest, earlier = page.runs
    assert (earlier.notified, earlier.anonymized) == (3, 0)
    assert (latest.notified, latest.anonymized, latest.cancelled) == (0, 2, 1)
    assert latest.tenant_reported and not latest.interrupted
    assert latest.k_anonymity.records == 2
    assert latest.k_anonymity.min_group_size >= 1 and latest.k_anonymity.k == 5
    assert earlier.k_anonymity.records == 0
    assert latest.finish_time.ToDatetime() >= latest.start_time.ToDatetime()

    # globex sees the same runs, with only its own part.
    theirs = _runs(rv, "globex").runs
    assert [r.run_id for r in theirs] == [second.run_id, first.run_id]
    assert all(r.anonymized == 0 for r in theirs)
    assert theirs[1].notified == 1 and theirs[0].k_anonymity.records == 0

    # Paged, newest first.
    one = _runs(rv, page_size=1)
    assert [r.run_id for r in one.runs] == [second.run_id] and one.next_page_token
    rest = _runs(rv, page_size=1, page_token=one.next_page_token)
    assert [r.run_id for r in rest.runs] == [first.run_id] and rest.next_page_token == ""


def test_an_old_report_shows_no_tenant_part_and_bad_tokens_are_refused(
    rv: RunningVault,
) -> None:
    old = {"run_id": "run_old", "counts": {"anonymized": 7}, "interrupted": False}
    with rv.app.db.engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                id="run_" + "a" * 26, started_at=1, finished_at=2, report=json.dumps(old)
            )
        )
    (run,) = _runs(rv).runs
    assert not run.tenant_reported and run.anonymized == 0  # not all tenants' 7
    assert not run.HasField("k_anonymity")
    client = admin(rv)
    with pytest.raises(VaultClientError) as caught:
        client.call(
            client.retention,
            "ListRetentionRuns",
            rpb.ListRetentionRunsRequest(page_token="2.run_x"),
        )
    assert caught.value.code == "INVALID_ARGUMENT"
