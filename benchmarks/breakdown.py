"""Where the time of one masked get and of one batch-created subject goes, stage by stage.

In-process, on the real components `VaultApp.open` wires (no gRPC): each stage is timed
alone, many times, and reported as the median cost per call (get) or per subject (batch
create). The stages add up to roughly the domain call measured whole; what the server
adds on top is gRPC itself (the echo baseline) and the interceptor chain.

    .venv/bin/python benchmarks/run.py            # runs this as one of its sections
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from report import Results

from vault import key_custody
from vault.api import convert
from vault.app import VaultApp
from vault.clock import to_micros
from vault.config import Settings
from vault.consent import ledger
from vault.context import CallContext
from vault.crypto import FieldProvenance
from vault.identity import TokenIssuer
from vault.policy import Action
from vault.principal import Principal
from vault.records.cipher import RecordCipher
from vault.records.rendering import ViewRenderer
from vault.storage import migrate
from vault.storage import subjects as repo
from vault.storage.db import create_engine
from vault.storage.subject_reads import subject_with_consent
from vault.storage.subjects import encode_fields

GROUP_GET = "where a masked get goes (in-process)"
GROUP_CREATE = "where a batch-created subject goes (in-process)"
BATCH = 1_000

PROV = FieldProvenance(1, "bench", 0)


def _median_us(run: Callable[[int], object], calls: int, rounds: int = 5) -> float:
    """Median over `rounds` of the mean cost per call of `calls` calls, in microseconds."""
    run(0)
    samples = []
    for r in range(rounds):
        started = time.perf_counter_ns()
        for i in range(calls):
            run(r * calls + i)
        samples.append((time.perf_counter_ns() - started) / calls / 1000)
    return statistics.median(samples)


def _principal(roles: str, **attrs: str) -> Principal:
    return Principal("bench", "acme", frozenset({roles}), MappingProxyType(attrs))


def run(
    results: Results,
    db: str,
    data_dir: Path,
    database_url: str | None,
    records: Sequence[dict[str, str]],
    calls: int,
) -> None:
    settings = Settings(
        data_dir=data_dir, database_url=database_url, retention_schedule="", address="127.0.0.1:0"
    )
    key_custody.init_keys(settings)
    if database_url:
        engine = create_engine(database_url)
        migrate.upgrade(engine)
        import audit

        audit.migrate(engine)
        engine.dispose()
    app = VaultApp.open(settings)
    try:
        ids = _create_stages(results, db, app, records)
        _get_stages(results, db, app, settings, ids, calls)
    finally:
        app.close()


def _call(principal: Principal, method: str) -> CallContext:
    return CallContext(method=method, request_id=uuid.uuid4().hex, principal=principal)


def _create_stages(
    results: Results, db: str, app: VaultApp, records: Sequence[dict[str, str]]
) -> list[str]:
    service = _principal("service")
    sealing = RecordCipher(app.keyring, app.dictionary.index_forms)
    now = app.clock.now()
    today, now_us = now.date(), to_micros(now)
    batch = list(records[:BATCH])
    request = pb.BatchCreateSubjectsRequest(items=[pb.SubjectInput(fields=r) for r in batch])
    wire = request.SerializeToString()
    dek, _ = app.keyring.new_data_key()
    sealer = app.keyring.sealer(dek, "acme", "sub_" + "a" * 26)
    indexer = app.keyring.blind_indexer()
    prepared = [sealing.prepare_new("acme", "bench", r, now_us) for r in batch]
    stored = {n: repo.decode_fields(prepared[0].row["fields"])[n] for n in batch[0]}
    versions = dict.fromkeys(stored, 1)
    tag = sealer.seal_field_set(versions)

    def decode(_: int) -> object:
        parsed = pb.BatchCreateSubjectsRequest.FromString(wire)
        return [dict(item.fields) for item in parsed.items]

    stages: list[tuple[str, Callable[[int], object], int]] = [
        ("protobuf decode of the request", decode, BATCH),
        (
            "validate + normalize (data dictionary)",
            lambda i: app.dictionary.normalize(batch[i % BATCH], require_all=True, today=today),
            1,
        ),
        ("new data key + AES key wrap", lambda i: app.keyring.new_data_key(), 1),
        (
            "seal 10 fields (AES-256-GCM)",
            lambda i: [sealer.seal(n, v.encode(), PROV) for n, v in batch[i % BATCH].items()],
            1,
        ),
        (
            "4 blind indexes (HMAC-SHA256)",
            lambda i: [
                indexer.compute("acme", n, batch[i % BATCH][n])
                for n in ("family_name", "email", "phone", "national_id")
            ],
            1,
        ),
        ("field-set tag (AES-GCM, no plaintext)", lambda i: sealer.seal_field_set(versions), 1),
        ("fields blob (encode_fields)", lambda i: encode_fields(stored, tag), 1),
        (
            "prepare_new whole (the four above)",
            lambda i: sealing.prepare_new("acme", "bench", batch[i % BATCH], now_us),
            1,
        ),
    ]
    if db == "sqlite":  # CPU-only stages: the same on any database, measured once
        for label, fn, per in stages:
            cost = _median_us(fn, 1 if per > 1 else 2_000, rounds=5) / per
            results.add(GROUP_CREATE, label, None, cost, "us")

    ids: list[str] = []
    insert_ns: list[int] = []

    def insert(_: int) -> None:
        rows = [sealing.prepare_new("acme", "bench", r, now_us) for r in batch]
        started = time.perf_counter_ns()
        with app.db.write() as conn:
            repo.insert_subjects(conn, [p.row for p in rows])
            repo.insert_blind_indexes(conn, [x for p in rows for x in p.index_rows])
        insert_ns.append(time.perf_counter_ns() - started)
        ids.extend(p.subject_id for p in rows)

    for i in range(5):
        insert(i)
    insert_us = statistics.median(insert_ns) / BATCH / 1000
    results.add(GROUP_CREATE, "insert row + 4 index rows (executemany, commit)", db, insert_us,
                "us", f"batches of {BATCH:,}")  # fmt: skip

    def audit_batch(_: int) -> None:
        call = _call(service, "/v/BatchCreateSubjects")
        call.subject_ids = ids[-BATCH:]
        with app.db.write() as conn:
            app.auditor.record_in(conn, call)

    audit_us = _median_us(audit_batch, 1, rounds=5) / BATCH
    results.add(GROUP_CREATE, "audit entry of the batch (1,000 subject links), commit", db,
                audit_us, "us")  # fmt: skip

    def domain(_: int) -> object:
        return app.records.batch_create(_call(service, "/v/BatchCreateSubjects"), batch,
                                        all_or_nothing=False)  # fmt: skip

    whole = _median_us(domain, 1, rounds=5) / BATCH
    results.add(GROUP_CREATE, "RecordService.batch_create whole (incl. audit)", db, whole, "us",
                f"= {1e6 / whole:,.0f} subjects/s in one thread, before gRPC")  # fmt: skip
    return ids


def _get_stages(
    results: Results, db: str, app: VaultApp, settings: Settings, ids: list[str], calls: int
) -> None:
    agent = _principal("support_agent", clearance="2")
    issuer = TokenIssuer(
        settings.token_private_key.read_bytes(),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        clock=app.clock,
    )
    token = issuer.issue(agent, timedelta(hours=1))
    verifier = app.token_verifier()
    renderer = ViewRenderer(
        app.policy,
        app.dictionary,
        RecordCipher(app.keyring, app.dictionary.index_forms),
        app.keyring,
    )
    now = app.clock.now()

    def pick(i: int) -> str:
        return ids[(i * 7919) % len(ids)]

    def read(i: int) -> object:
        with app.db.read() as conn:
            row, events = subject_with_consent(conn, pick(i))
        assert row is not None
        return row, ledger.current_from_rows(events, now)

    row, consent = read(0)
    rendered = renderer.render(agent, "support", "support", row, today=now.date(), consent=consent)

    def audit(i: int) -> None:
        call = _call(agent, "/v/GetSubject")
        call.subject_ids = [pick(i)]
        app.auditor.record(call)

    def audit_direct(i: int) -> None:
        call = _call(agent, "/v/GetSubject")
        call.subject_ids = [pick(i)]
        with app.db.write() as conn:
            app.auditor.record_in(conn, call)

    stages: list[tuple[str, Callable[[int], object]]] = [
        ("verify bearer token (Ed25519 JWT)", lambda i: verifier.verify(token)),
        (
            "policy decision (cached)",
            lambda i: app.policy.authorize(
                agent, Action.SUBJECT_READ, purpose="support", resource="view:support"
            ),
        ),
        ("read subject + consent ledger (one statement, one read transaction)", read),
        (
            "plan + unwrap + open + mask (render)",
            lambda i: renderer.render(
                agent, "support", "support", row, today=now.date(), consent=consent
            ),
        ),
        ("to protobuf", lambda i: pb.GetSubjectResponse(subject=convert.view(rendered))),
        ("audit entry (group commit, waits for the commit)", audit),
        ("audit entry in this thread's own transaction (for comparison)", audit_direct),
        (
            "RecordReader.get whole (domain, no gRPC)",
            lambda i: app.reader.get(_call(agent, "/v/GetSubject"), pick(i), "support", "support"),
        ),
    ]
    for label, fn in stages:
        per_db = label.startswith(("read", "audit", "RecordReader"))
        if per_db or db == "sqlite":  # CPU-only stages are measured once
            results.add(GROUP_GET, label, db, _median_us(fn, calls), "us")
