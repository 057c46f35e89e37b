"""After anonymization no table holds a subject's personal values, its blind-index
digests, its tokens or its wrapped key, and on SQLite neither do the database files read
as raw bytes; the generalized attributes remain, and the audit log still verifies."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from sqlalchemy.engine import Engine

from tests.integration.harness import shreddable_copies
from tests.integration.retention.helpers import (
    DEFAULT_DAYS,
    NOTICE_DAYS,
    TestClock,
    as_bytes,
    audit_actions_per_subject,
    customer,
    dump_database,
    job_with_child,
    retention_vault,
    rows,
    verify_audit_log,
)
from tests.raw_files import database_files_holding
from vault.fields.dictionary import DataDictionary
from vault.retention.report import Outcome

COUNT = 24


def _secrets(dictionary: DataDictionary, values: dict[str, str]) -> list[bytes]:
    """Every value anonymization must not keep, as typed and as normalized."""
    normalized = dictionary.normalize(values, require_all=True, today=date(2030, 1, 1))
    found = []
    for name, raw in values.items():
        if dictionary.fields[name].anonymization.kind == "keep":
            continue  # country and loyalty tier are kept by design (not personal data)
        found += [raw.lower().encode(), normalized[name].lower().encode()]
    return found


def _scan(engine: Engine, texts: list[bytes], binary: list[bytes]) -> tuple[set[str], int]:
    """Tables where any secret occurs, and how many values were looked at."""
    hits: set[str] = set()
    scanned = 0
    for table, _column, value in dump_database(engine):
        if value is None or isinstance(value, int):
            continue
        scanned += 1
        data = as_bytes(value)
        lowered = data.lower()
        if any(secret in lowered for secret in texts) or any(b in data for b in binary):
            hits.add(table)
    return hits, scanned


@pytest.mark.parametrize("preparer", ["in_process", "child"])
def test_no_value_digest_token_or_key_survives_anonymization(
    tmp_path: Path, database_url: str | None, preparer: str
) -> None:
    """Both ways a run prepares its batches: in turn in the job's process (small runs)
    and in a child process (large ones)."""
    clock = TestClock()
    with retention_vault(tmp_path / "data", database_url, clock) as rv:
        service = rv.client()
        people = [customer(n) for n in range(COUNT)]
        created = service.batch_create(people)
        ids = [r.subject_id for r in created.results]
        fraud = rv.client(principal="fraud-1", roles=("fraud_analyst",))
        tokens = [
            token
            for sid in ids[:6]
            for token in (
                service.tokenize(sid, "email", pb.TOKEN_KIND_RANDOM, "support").token,
                fraud.tokenize(sid, "email", pb.TOKEN_KIND_DETERMINISTIC, "fraud", "FR-1").token,
            )
        ]
        engine = rv.app.db.engine
        digests = [bytes(d) for (d,) in rows(engine, "SELECT digest FROM blind_indexes")]
        wrapped = [bytes(w) for (w,) in rows(engine, "SELECT wrapped_dek FROM subjects")]
        assert len(digests) == COUNT * 4 and len(tokens) == 12

        values = [s for p in people for s in _secrets(rv.app.dictionary, p)]
        binary = digests + wrapped
        texts = [
            *values,
            *(t.lower().encode() for t in tokens),
            *(d.hex().encode() for d in digests),
            *(base64.b64encode(b).lower() for b in binary),
        ]
        before, _ = _scan(engine, texts, binary)
        assert {"subjects", "blind_indexes", "tokens"} <= before  # the scan does find them
        copies = shreddable_copies(engine, ids)
        if database_url is None:  # SQLite: the files too, as raw bytes
            assert sum(database_files_holding(tmp_path / "data", copies).values()) >= COUNT * 8

        clock.advance(timedelta(days=DEFAULT_DAYS - NOTICE_DAYS))
        assert rv.app.retention_job.run().count(Outcome.NOTIFIED) == COUNT
        clock.advance(timedelta(days=NOTICE_DAYS))
        job = job_with_child(rv, clock, 5) if preparer == "child" else rv.app.retention_job
        assert job.run().count(Outcome.ANONYMIZED) == COUNT

        hits, scanned = _scan(engine, texts, binary)
        assert scanned > COUNT * 10  # the audit log and every other table were read
        assert hits == set()
        if database_url is None:  # no stale WAL frame, no deleted cell left in free space
            assert database_files_holding(tmp_path / "data", copies) == {}

        kept = Counter(r[0] for r in rows(engine, "SELECT attributes FROM anonymized_records"))
        expected = Counter(
            json.dumps(
                {
                    "country": p["country"],
                    "date_of_birth": p["date_of_birth"][:3] + "0-" + p["date_of_birth"][:3] + "9",
                    "loyalty_tier": p["loyalty_tier"],
                    "postal_code": p["postal_code"][:3],
                },
                sort_keys=True,
                separators=(",", ":"),
            )
            for p in people
        )
        assert kept == expected
        assert audit_actions_per_subject(engine, "AnonymizeSubject") == dict.fromkeys(ids, 1)
        verify_audit_log(rv)
