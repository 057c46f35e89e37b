"""A database administrator rewrites the audit trail and tries to get it signed.

Each attack is what the review did (issue 20, item 3): tamper with the stored log, then
cover it up the way only someone with write access to the database can (delete the
checkpoints above the change and recompute the stored tree state), and let the vault
carry on appending. On the old code every attack succeeded: the integrator trusted the
tree state stored beside the entries and signed the rewritten tree, after which
`audit verify` (with the log's public key, all the old command knew) said OK. Each test
shows that old path still "works" (an integrator with no memory, a verify with no MAC
key and no witness) and then that three things now refuse, each on its own:

- the integrator, which keeps its last signed checkpoint in a file outside the database
  (a restarted one reads it back), raises `TreeConflictError` instead of signing;
- the witness, a separate `customer-vault witness` process with its own key and
  storage, refuses to cosign the rewritten tree (and the publisher raises its alarm);
- `customer-vault audit verify` (a real process) with the MAC key and the witness's key
  and URL exits 1.

Real SQLite files, real keys, a real witness process on a loopback port.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit import (
    AuditEntry,
    CheckpointSigner,
    EntryMac,
    Integrator,
    LastSignedFile,
    Publisher,
    TreeConflictError,
    append_in,
    create_sqlite_engine,
    generate_mac_key,
    generate_signing_key,
    migrate,
    use_entry_mac,
    verify_log,
)
from audit.append import ROW_COLUMNS, entry_row
from audit.export import write_jsonl
from audit.mac import leaf_data
from audit.merkle import CompactRange, leaf_hash
from audit.query import iter_query
from audit.restore import JournalError, witnessed_erasures
from audit.tables import (
    TREE_STATE_ID,
    checkpoints,
    cosignatures,
    entries,
    entry_subjects,
    tree_state,
)
from tests.integration.audit import helpers
from tests.integration.serving import clean_env, run_cli
from tests.integration.witnessing import WitnessProcess, witness_process

ORIGIN = helpers.ORIGIN
SIZE = 40


@dataclass
class Setup:
    """The vault's side of one log: database, keys, integrator and publisher."""

    tmp: Path
    db_path: Path
    engine: Engine
    signer: CheckpointSigner
    public_key: Path
    mac_key: Path
    mac: EntryMac
    state_file: Path
    witness: WitnessProcess
    integrator: Integrator
    publisher: Publisher
    alarms: list[str]

    def new_integrator(self) -> Integrator:
        """The integrator of a restarted process: it reads its last-checkpoint file."""
        return Integrator(
            self.engine,
            self.signer,
            ORIGIN,
            checkpoint_interval=4,
            last_signed=LastSignedFile(self.state_file, self.signer.verifier()),
            mac=self.mac,
        )

    def append(self, numbers: range) -> None:
        with self.engine.begin() as conn:
            append_in(conn, [helpers.make_entry(n) for n in numbers])

    def round(self, numbers: range) -> None:
        self.append(numbers)
        self.integrator.integrate()
        self.publisher.publish()

    def reopen(self) -> None:
        self.engine.dispose()
        self.engine = create_sqlite_engine(self.db_path)
        use_entry_mac(self.engine, self.mac)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    generate_signing_key(tmp_path / "audit.pem", tmp_path / "audit.pub.pem")
    signer = CheckpointSigner((tmp_path / "audit.pem").read_bytes(), ORIGIN)
    mac_key = generate_mac_key(tmp_path / "keys" / "audit_mac.key")
    mac = EntryMac.from_file(mac_key)
    db_path = tmp_path / "vault.db"
    engine = create_sqlite_engine(db_path)
    migrate(engine)
    use_entry_mac(engine, mac)
    state_file = tmp_path / "data" / "audit" / "last-checkpoint"
    with witness_process(tmp_path / "witness", signer.verifier_key) as witness:
        alarms: list[str] = []
        integrator = Integrator(
            engine,
            signer,
            ORIGIN,
            checkpoint_interval=4,
            last_signed=LastSignedFile(state_file, signer.verifier()),
            mac=mac,
        )
        publisher = Publisher(engine, [witness.client()], signer.verifier(), on_alarm=alarms.append)
        found = Setup(
            tmp_path,
            db_path,
            engine,
            signer,
            tmp_path / "audit.pub.pem",
            mac_key,
            mac,
            state_file,
            witness,
            integrator,
            publisher,
            alarms,
        )
        yield found
        found.engine.dispose()


def build(setup: Setup, on_half: Callable[[], None] | None = None) -> str:
    """Forty entries in four rounds, each integrated and cosigned; the witnessed note."""
    for start in range(0, SIZE, 10):
        setup.round(range(start, start + 10))
        if start == 10 and on_half is not None:
            on_half()
    latest = setup.witness.client().latest(ORIGIN)
    assert latest is not None
    assert setup.signer.verifier().verify(latest).size == SIZE
    return latest


# --- the tampering, as a DBA would do it -------------------------------------------------


def cover_up(conn: Connection, above: int) -> None:
    """Delete the checkpoints (and cosignatures) above `above` and recompute the stored
    tree state from the stored leaves: the tree now looks self-consistent."""
    conn.execute(sa.delete(checkpoints).where(checkpoints.c.size > above))
    conn.execute(sa.delete(cosignatures).where(cosignatures.c.size > above))
    hashes = conn.execute(sa.select(entries.c.leaf_hash).order_by(entries.c.leaf_index)).scalars()
    tree = CompactRange()
    tree.extend([bytes(h) for h in hashes if h is not None])
    conn.execute(
        sa.update(tree_state)
        .where(tree_state.c.id == TREE_STATE_ID)
        .values(size=tree.size, compact_range=tree.to_bytes(), root_hash=tree.root())
    )


def edit_actor(conn: Connection) -> None:
    """Entry 17's actor becomes mallory; its leaf hash is recomputed to match (its MAC
    cannot be: the key is not in the database)."""
    row = helpers.row_at(conn, 17)
    edited = dataclasses.replace(AuditEntry.from_canonical(row["entry"]), actor="mallory")
    data = edited.canonical_bytes()
    conn.execute(
        sa.update(entries)
        .where(entries.c.id == row["id"])
        .values(entry=data, actor="mallory", leaf_hash=leaf_hash(leaf_data(data, row["mac"])))
    )
    cover_up(conn, 16)


def delete_entries(conn: Connection) -> None:
    helpers.delete_leaf(conn, 17, renumber=True)
    helpers.delete_leaf(conn, 17, renumber=True)
    cover_up(conn, 16)


INVENTED = AuditEntry(
    time=helpers.T0,
    actor="dpo-1",
    actor_roles=("dpo",),
    tenant="acme",
    action="EraseSubject",
    subject_ids=("sub-live",),
    purpose="data_subject_request",
    justification="DSR-4711",
    decision="allow",
    result_code="OK",
    request_id="req-invented",
)


def insert_invented(conn: Connection) -> None:
    """An "EraseSubject by dpo-1" for a live subject, slipped in at leaf 17."""
    helpers._shift(conn, 17, +1)
    row = dict(zip(ROW_COLUMNS, entry_row(INVENTED), strict=True))
    (entry_id,) = conn.execute(
        sa.insert(entries).values(leaf_index=17, **row).returning(entries.c.id)
    ).one()
    conn.execute(
        sa.insert(entry_subjects).values(subject_id="sub-live", tenant="acme", entry_id=entry_id)
    )
    cover_up(conn, 16)


def reorder(conn: Connection) -> None:
    helpers.swap_leaves(conn, 10, 20)
    cover_up(conn, 9)


def truncate_and_rebuild(conn: Connection) -> None:
    helpers.truncate(conn, 30, cover_up=True)
    conn.execute(sa.delete(cosignatures).where(cosignatures.c.size > 30))


ATTACKS: dict[str, Callable[[Connection], None]] = {
    "edit an entry's actor": edit_actor,
    "delete entries": delete_entries,
    "insert an invented EraseSubject by dpo-1": insert_invented,
    "reorder entries": reorder,
    "truncate and rebuild": truncate_and_rebuild,
}


def verify_cli(setup: Setup, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        [
            "audit",
            "verify",
            "--database-url",
            f"sqlite:///{setup.db_path}",
            "--public-key",
            str(setup.public_key),
            *extra,
        ],
        clean_env(),
    )


def full_verify(setup: Setup) -> subprocess.CompletedProcess[str]:
    return verify_cli(
        setup,
        "--mac-key",
        str(setup.mac_key),
        "--witness-key",
        setup.witness.verifier_key,
        "--witness-url",
        setup.witness.url,
    )


def assert_all_three_refuse(setup: Setup, witnessed: str) -> None:
    # 1. The integrator: the running one, and one restarted from its file.
    for integrator in (setup.integrator, setup.new_integrator()):
        with pytest.raises(TreeConflictError):
            integrator.integrate()
    assert setup.integrator.refusal is not None
    assert "mallory" not in setup.integrator.refusal
    # The old code's path: an integrator that trusts the stored tree signs it, and the
    # old `audit verify` (public key only) accepts the result.
    Integrator(setup.engine, setup.signer, ORIGIN, checkpoint_interval=4).integrate()
    assert verify_log(setup.engine, setup.signer.verifier()).ok
    assert verify_cli(setup).returncode == 0
    # 2. The witness refuses to cosign the rewritten tree and keeps what it cosigned.
    fresh = Publisher(
        setup.engine,
        [setup.witness.client()],
        setup.signer.verifier(),
        on_alarm=setup.alarms.append,
    )
    fresh.publish()
    assert setup.alarms, "the publisher raised no alarm"
    assert fresh.alarms()
    assert setup.witness.client().latest(ORIGIN) == witnessed
    # 3. `audit verify` with the MAC key and the witness exits 1.
    result = full_verify(setup)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout
    assert "mallory" not in result.stdout


def test_an_untouched_log_verifies_with_macs_and_cosignatures(setup: Setup) -> None:
    build(setup)
    setup.round(range(100, 103))
    result = full_verify(setup)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every entry carries a valid MAC" in result.stdout
    assert "witness witness.test/w1 cosigned up to size 43 (the newest checkpoint)" in result.stdout
    report = verify_log(
        setup.engine,
        setup.signer.verifier(),
        mac=setup.mac,
        witnesses=[setup.witness.client().verifier],
    )
    assert report.ok
    assert report.latest_cosigned_by == ("witness.test/w1",)
    assert setup.state_file.stat().st_mode & 0o777 == 0o600
    # Without the keys the command says what it did not check.
    result = verify_cli(setup)
    assert result.returncode == 0
    assert "entry MACs NOT checked" in result.stdout
    assert "witness cosignatures NOT checked" in result.stdout


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_covered_up_rewrite_is_refused_by_integrator_witness_and_verify(
    setup: Setup, attack: str
) -> None:
    witnessed = build(setup)
    with setup.engine.begin() as conn:
        ATTACKS[attack](conn)
    setup.append(range(200, 205))  # the vault carries on
    assert_all_three_refuse(setup, witnessed)


def test_rewinding_to_an_old_copy_of_the_database_is_refused(setup: Setup) -> None:
    """The DBA keeps a copy taken at 20 entries and puts it back at 40: every row in it
    is genuine, signed and cosigned; only what lies outside the database says the log
    was longer."""
    copy = setup.tmp / "copy.db"

    def take_copy() -> None:
        with setup.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(setup.db_path, copy)

    witnessed = build(setup, on_half=take_copy)
    setup.engine.dispose()
    for suffix in ("-wal", "-shm"):
        Path(f"{setup.db_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, setup.db_path)
    setup.reopen()
    setup.integrator = setup.new_integrator()
    setup.append(range(200, 205))
    assert_all_three_refuse(setup, witnessed)
    assert any("rewound" in alarm for alarm in setup.alarms)


def test_an_invented_pending_entry_is_not_integrated(setup: Setup) -> None:
    """The DBA inserts the invented erasure as a new, not yet integrated row: the old
    integrator numbered and signed it like any other. It has no valid MAC."""
    build(setup)
    with setup.engine.begin() as conn:
        row = dict(zip(ROW_COLUMNS, entry_row(INVENTED), strict=True))
        (entry_id,) = conn.execute(sa.insert(entries).values(**row).returning(entries.c.id)).one()
        conn.execute(
            sa.insert(entry_subjects).values(
                subject_id="sub-live", tenant="acme", entry_id=entry_id
            )
        )
    with pytest.raises(TreeConflictError, match="MAC"):
        setup.integrator.integrate()
    Integrator(setup.engine, setup.signer, ORIGIN).integrate()  # the old code signs it
    old_report = verify_log(setup.engine, setup.signer.verifier())
    assert old_report.ok, old_report.problem
    report = verify_log(setup.engine, setup.signer.verifier(), mac=setup.mac)
    assert not report.ok
    assert report.first_bad_position == SIZE
    assert report.problem == "entry has no MAC (later than entries with one)"


def _journal(setup: Setup) -> list[str]:
    """The JSON-lines journal `audit export` writes (the CLI's export goes through a
    running vault's AuditService; this log has no vault, so the same writer is fed from
    the database directly)."""
    out = io.StringIO()
    write_jsonl(iter_query(setup.engine), out)
    return out.getvalue().splitlines()


def test_only_witnessed_erasures_are_reapplied_after_a_restore(setup: Setup) -> None:
    """The restore runbook re-applies erasures from the exported journal. An invented
    erasure in it (written into the database before the export, or into the file after)
    made the old runbook erase a live subject; now nothing from a journal that does not
    make the witnessed tree is listed."""
    build(setup)
    erasure = dataclasses.replace(INVENTED, actor="dpo-2", subject_ids=("sub-gone",))
    with setup.engine.begin() as conn:
        append_in(conn, [erasure])
    setup.integrator.integrate()
    setup.publisher.publish()
    witness = setup.witness.client()
    latest = witness.latest(ORIGIN)
    assert latest is not None
    witnessed = setup.signer.verifier().verify(latest)
    honest = _journal(setup)
    found = witnessed_erasures(setup.engine, honest, witnessed, since=helpers.T0, mac=setup.mac)
    assert [e.subject_id for e in found.erasures] == ["sub-gone"]
    # Through the command, as the runbook says.
    journal_file = setup.tmp / "journal.jsonl"
    journal_file.write_text("\n".join(honest) + "\n")
    result = run_cli(
        [
            "audit",
            "erasures",
            "--journal",
            str(journal_file),
            "--since",
            "2025-01-01",
            "--witness-key",
            setup.witness.verifier_key,
            "--witness-url",
            setup.witness.url,
            "--mac-key",
            str(setup.mac_key),
            "--public-key",
            str(setup.public_key),
            "--database-url",
            f"sqlite:///{setup.db_path}",
        ],
        clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "sub-gone" in result.stdout
    # The DBA slips an invented erasure into the database before the export ...
    with setup.engine.begin() as conn:
        insert_invented(conn)
    with pytest.raises(JournalError):
        witnessed_erasures(setup.engine, _journal(setup), witnessed, since=helpers.T0)
    # ... or into the journal file itself.
    forged = [
        line.replace('"subject_ids":["sub-gone"]', '"subject_ids":["sub-live"]') for line in honest
    ]
    assert forged != honest
    with pytest.raises(JournalError):
        witnessed_erasures(setup.engine, forged, witnessed, since=helpers.T0)
    journal_file.write_text("\n".join(forged) + "\n")
    result = run_cli(
        [
            "audit",
            "erasures",
            "--journal",
            str(journal_file),
            "--since",
            "2025-01-01",
            "--witness-key",
            setup.witness.verifier_key,
            "--witness-url",
            setup.witness.url,
            "--public-key",
            str(setup.public_key),
            "--database-url",
            f"sqlite:///{setup.db_path}",
        ],
        clean_env(),
    )
    assert result.returncode == 1
    assert "sub-live" not in result.stdout


def test_a_last_checkpoint_file_that_is_not_the_logs_is_refused_not_taken_for_a_first_start(
    setup: Setup,
) -> None:
    """Without the file an integrator trusts the database once; a file that is there but
    unreadable or signed by another key must not be mistaken for that."""
    build(setup)
    generate_signing_key(setup.tmp / "other.pem")
    other = CheckpointSigner((setup.tmp / "other.pem").read_bytes(), ORIGIN)
    text = setup.state_file.read_text()
    for forged in (text.replace(text[40:60], "x" * 20), "{}", other.sign_note("x\n")):
        setup.state_file.write_text(forged)
        with pytest.raises(TreeConflictError, match="last-checkpoint file"):
            setup.new_integrator().integrate()
