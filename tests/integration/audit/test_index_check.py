"""The index check: every entry's query columns and subject links against its bytes.

The links of a chunk are read in one range scan and compared with the entries' subject
lists as strings; these tests cover the shapes of log that take the other roads (leaves
out of id order, sparse ids, duplicate subjects) and the forgeries that must not pass.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit import CheckpointSigner, Integrator, append_in, index_check, verify_log
from audit.tables import entries, entry_subjects
from tests.integration.audit import helpers

SIZE = 24
# Leaf n names these subjects (some none, some several, one a subject twice).
SUBJECTS: dict[int, tuple[str, ...]] = {
    3: (),
    5: ("sub-a", "sub-b", "sub-c"),
    9: ("sub-z", "sub-a", "sub-z"),
    11: (),
    17: ("sub-x", "sub-y"),
}


def _build(engine: Engine, signer: CheckpointSigner, subjects: dict[int, tuple[str, ...]]) -> None:
    integrator = Integrator(engine, signer, helpers.ORIGIN, checkpoint_interval=1)
    for start in range(0, SIZE, 8):
        batch = [
            helpers.make_entry(n, subject_ids=subjects.get(n, (f"sub-{n % 5}",)))
            for n in range(start, start + 8)
        ]
        with engine.begin() as conn:
            append_in(conn, batch)
        integrator.integrate()


def _entry_id(conn: Connection, leaf: int) -> int:
    return int(helpers.row_at(conn, leaf)["id"])


def _links(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(entry_subjects)).mappings().all()
    conn.execute(sa.delete(entry_subjects))
    return [dict(row) for row in rows]


def _renumber(conn: Connection, new_id: dict[int, int]) -> None:
    """Give entries new ids (a permutation or a spread), links moved along: a log as
    valid as before, whose ids no longer run with its leaves."""
    links = _links(conn)
    for old, new in new_id.items():  # through negative ids, so no two collide
        conn.execute(sa.update(entries).where(entries.c.id == old).values(id=-new))
    conn.execute(sa.update(entries).where(entries.c.id < 0).values(id=-entries.c.id))
    for link in links:
        link["entry_id"] = new_id.get(link["entry_id"], link["entry_id"])
    conn.execute(sa.insert(entry_subjects), links)


def _swap_ids(conn: Connection, first: int, second: int) -> None:
    a, b = _entry_id(conn, first), _entry_id(conn, second)
    _renumber(conn, {a: b, b: a})


def _spread_ids(conn: Connection) -> None:
    ids = conn.execute(sa.select(entries.c.id)).scalars().all()
    _renumber(conn, {entry_id: entry_id * 1000 for entry_id in ids})


def _merge_links(conn: Connection) -> None:
    """Replace leaf 17's two links by one whose id quotes both, so that the links joined
    as JSON read the same; neither subject's history would show the entry."""
    entry_id = _entry_id(conn, 17)
    conn.execute(sa.delete(entry_subjects).where(entry_subjects.c.entry_id == entry_id))
    conn.execute(
        sa.insert(entry_subjects).values(
            subject_id='sub-x","sub-y', tenant="acme", entry_id=entry_id
        )
    )


def _move_link(conn: Connection) -> None:
    """Move leaf 5's last link to leaf 6: the subjects in id order read the same."""
    first, second = _entry_id(conn, 5), _entry_id(conn, 6)
    conn.execute(
        sa.update(entry_subjects)
        .where(entry_subjects.c.entry_id == first, entry_subjects.c.subject_id == "sub-c")
        .values(entry_id=second)
    )


def _reorder_links(conn: Connection) -> None:
    """Store leaf 17's links in the other order: still the same set, so still valid."""
    entry_id = _entry_id(conn, 17)
    conn.execute(sa.delete(entry_subjects).where(entry_subjects.c.entry_id == entry_id))
    for subject in ("sub-y", "sub-x"):
        conn.execute(
            sa.insert(entry_subjects).values(subject_id=subject, tenant="acme", entry_id=entry_id)
        )


VALID = {
    "as written": lambda c: None,
    "two leaves out of id order": lambda c: _swap_ids(c, 4, 13),
    "sparse ids": _spread_ids,
    "links stored in another order": _reorder_links,
}


@pytest.mark.parametrize("change", VALID)
def test_valid_logs_verify(
    audit_engine: Engine, audit_signer: CheckpointSigner, change: str
) -> None:
    _build(audit_engine, audit_signer, SUBJECTS)
    with audit_engine.begin() as conn:
        VALID[change](conn)
    report = verify_log(audit_engine, audit_signer.verifier())
    assert (report.ok, report.index_checked, report.entries_checked) == (True, True, SIZE)


def test_an_untouched_log_needs_no_entry_parsed(
    audit_engine: Engine, audit_signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries with no, one and several subjects pass the fast check alone."""
    _build(audit_engine, audit_signer, {n: s for n, s in SUBJECTS.items() if n != 9})

    def parse(*_: object) -> str:
        raise AssertionError("the slow check ran")

    monkeypatch.setattr(index_check, "_index_problem", parse)
    assert verify_log(audit_engine, audit_signer.verifier()).ok


def _unlink_out_of_order(conn: Connection) -> None:
    _swap_ids(conn, 4, 13)
    helpers.unlink_subject(conn, 13)


def _edit_column_sparse(conn: Connection) -> None:
    _spread_ids(conn)
    helpers.edit_column(conn, 20)


def _link_subject_sparse(conn: Connection) -> None:
    _spread_ids(conn)
    helpers.link_subject(conn, 8)


FORGED = {
    "links merged into one quoted id": (_merge_links, 17),
    "a link moved to the next entry": (_move_link, 5),
    "a link deleted, leaves out of id order": (_unlink_out_of_order, 13),
    "a column edited, sparse ids": (_edit_column_sparse, 20),
    "a link added, sparse ids": (_link_subject_sparse, 8),
}


@pytest.mark.parametrize("forgery", FORGED)
def test_forged_links_and_columns_are_caught(
    audit_engine: Engine, audit_signer: CheckpointSigner, forgery: str
) -> None:
    tamper, position = FORGED[forgery]
    _build(audit_engine, audit_signer, SUBJECTS)
    with audit_engine.begin() as conn:
        tamper(conn)
    report = verify_log(audit_engine, audit_signer.verifier())
    assert (report.ok, report.first_bad_position) == (False, position)
    assert report.problem is not None
    assert "do not match its content" in report.problem
