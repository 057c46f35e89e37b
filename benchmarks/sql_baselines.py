"""Storage without the server: plain SQLAlchemy Core, sqlalchemy-utils, the vault's sealing.

All three store the same ten fields of the same records on the same engine (the vault's
`create_engine`: WAL and synchronous=NORMAL on SQLite), in batches with one executemany
per batch and one transaction per batch, then read rows back by primary key, one
connection checkout and transaction per read (what a service pays per request):

- plain: ten text columns, no crypto (the floor);
- sqlalchemy-utils: ten `StringEncryptedType(AesGcmEngine)` columns under one key;
- vault (in-process): `RecordCipher.prepare_new` (a data key per subject, wrapped by
  the KEK, ten AES-256-GCM seals with bound associated data, four blind indexes) and the
  vault's repository inserts; reads unwrap the data key and open all ten fields.

No gRPC, authentication, policy or audit here: those are measured over the wire.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from report import Results
from sqlalchemy.engine import Engine
from sqlalchemy_utils import StringEncryptedType
from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine
from workload import FIELD_NAMES, chunks, rate_of

from vault.crypto import KeyRing
from vault.records.cipher import RecordCipher
from vault.storage import migrate
from vault.storage import subjects as repo
from vault.storage.db import Database, create_engine

TENANT = "acme"
GROUP = "storage (no server)"


@dataclass(frozen=True)
class StorageSizes:
    rows_per_repetition: int
    batch: int
    reads: int
    repetitions: int


def _tables(key: str) -> tuple[sa.Table, sa.Table]:
    metadata = sa.MetaData()
    plain = sa.Table(
        "bench_plain_subjects",
        metadata,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        *(sa.Column(name, sa.String(2000)) for name in FIELD_NAMES),
    )
    encrypted = sa.Table(
        "bench_sqlalchemy_utils_subjects",
        metadata,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        *(
            sa.Column(name, StringEncryptedType(sa.String, key, AesGcmEngine))
            for name in FIELD_NAMES
        ),
    )
    return plain, encrypted


def _insert_rate(
    insert_batch: Callable[[Sequence[dict[str, str]], int], None],
    records: Sequence[dict[str, str]],
    sizes: StorageSizes,
) -> tuple[float, list[float]]:
    samples = []
    per_rep = sizes.rows_per_repetition
    for rep in range(sizes.repetitions):
        part = records[rep * per_rep : (rep + 1) * per_rep]
        started = time.perf_counter()
        for offset, batch in enumerate(chunks(part, sizes.batch)):
            insert_batch(batch, rep * per_rep + offset * sizes.batch)
        samples.append(len(part) / (time.perf_counter() - started))
    return rate_of(samples).median, samples


def _read_rate(read_one: Callable[[str], object], ids: Sequence[str], sizes: StorageSizes) -> float:
    rng = random.Random(1)
    samples = []
    for _ in range(sizes.repetitions):
        picks = [rng.choice(ids) for _ in range(sizes.reads)]
        started = time.perf_counter()
        for subject_id in picks:
            read_one(subject_id)
        samples.append(len(picks) / (time.perf_counter() - started))
    return rate_of(samples).median


def _table_pair(engine: Engine, table: sa.Table, records: Sequence[dict[str, str]], prefix: str):
    def insert_batch(batch: Sequence[dict[str, str]], first: int) -> None:
        rows = [
            {"id": f"{prefix}{first + i}", "tenant": TENANT, **values}
            for i, values in enumerate(batch)
        ]
        with engine.connect().execution_options(vault_write=True) as conn, conn.begin():
            conn.execute(table.insert(), rows)

    query = sa.select(table).where(table.c.id == sa.bindparam("id"))

    def read_one(subject_id: str) -> object:
        with engine.connect() as conn, conn.begin():
            row = conn.execute(query, {"id": subject_id}).one()
            return tuple(row)  # sqlalchemy-utils decrypts as the row's values are read

    return insert_batch, read_one


def run(
    results: Results,
    db: str,
    url: str,
    keyring: KeyRing,
    searchable: Mapping[str, Callable[[str], str]],
    records: Sequence[dict[str, str]],
    sizes: StorageSizes,
) -> None:
    """Insert and read `records` three ways on the database at `url`."""
    engine = create_engine(url)
    migrate.upgrade(engine)
    plain, encrypted = _tables(key="benchmark-key-" + "k" * 32)
    plain.metadata.create_all(engine)
    total = sizes.rows_per_repetition * sizes.repetitions
    records = records[:total]
    try:
        floor = _measure_table(results, db, engine, plain, records, sizes, "plain SQLAlchemy Core")
        _measure_table(
            results, db, engine, encrypted, records, sizes, "sqlalchemy-utils AesGcm", floor
        )
        _measure_vault(results, db, engine, keyring, searchable, records, sizes, floor)
    finally:
        engine.dispose()


def _measure_table(
    results: Results,
    db: str,
    engine: Engine,
    table: sa.Table,
    records: Sequence[dict[str, str]],
    sizes: StorageSizes,
    name: str,
    floor: tuple[float, float] | None = None,
) -> tuple[float, float]:
    insert_batch, read_one = _table_pair(engine, table, records, prefix=table.name[:8])
    insert_rate, samples = _insert_rate(insert_batch, records, sizes)
    ids = [f"{table.name[:8]}{i}" for i in range(len(records))]
    read_rate = _read_rate(read_one, ids, sizes)
    insert_note = f"executemany, batches of {sizes.batch:,}"
    read_note = "by primary key, one transaction each"
    if floor is not None:
        insert_note += f"; {insert_rate / floor[0]:.2f}x plain"
        read_note += f"; {read_rate / floor[1]:.2f}x plain"
    results.add(GROUP, f"{name}: insert", db, insert_rate, "rows/s", insert_note, samples=samples)
    results.add(GROUP, f"{name}: point read", db, read_rate, "reads/s", read_note)
    return insert_rate, read_rate


def _measure_vault(
    results: Results,
    db: str,
    engine: Engine,
    keyring: KeyRing,
    searchable: Mapping[str, Callable[[str], str]],
    records: Sequence[dict[str, str]],
    sizes: StorageSizes,
    floor: tuple[float, float],
) -> None:
    database = Database(engine)
    sealing = RecordCipher(keyring, searchable)
    ids: list[str] = []
    now_us = int(time.time() * 1_000_000)

    def insert_batch(batch: Sequence[dict[str, str]], first: int) -> None:
        prepared = [sealing.prepare_new(TENANT, "bench", values, now_us) for values in batch]
        with database.write() as conn:
            repo.insert_subjects(conn, [p.row for p in prepared])
            repo.insert_blind_indexes(conn, [r for p in prepared for r in p.index_rows])
        ids.extend(p.subject_id for p in prepared)

    def read_one(subject_id: str) -> object:
        with database.read() as conn:
            row = repo.get(conn, subject_id)
        assert row is not None
        return sealing.open(row, FIELD_NAMES)

    insert_rate, samples = _insert_rate(insert_batch, records, sizes)
    read_rate = _read_rate(read_one, ids, sizes)
    label = "vault sealing + repository"
    results.add(
        GROUP,
        f"{label}: insert",
        db,
        insert_rate,
        "rows/s",
        f"data key + 10 seals + 4 blind indexes; {insert_rate / floor[0]:.2f}x plain",
        samples=samples,
    )
    results.add(
        GROUP,
        f"{label}: point read",
        db,
        read_rate,
        "reads/s",
        f"unwrap + open 10 fields; {read_rate / floor[1]:.2f}x plain",
    )
