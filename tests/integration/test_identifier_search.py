"""National ids are compared without their separators (`QQ123456C` finds `QQ 12 34 56 C`)
and shown as written; digests stored before that (over the written form) stay findable
by the written form, and the re-index after a blind-index rotation moves them over."""

from __future__ import annotations

import sqlalchemy as sa

from tests.data import ADA
from tests.integration.harness import RunningVault
from vault import key_custody as keys
from vault.crypto import LocalKeyFileProvider

SEARCHER = {"principal": "dpo-desk", "roles": ("dpo",)}
WRITTEN = ADA["national_id"]  # "QQ 12 34 56 C"


def _found(vault: RunningVault, value: str) -> list[str]:
    searcher = vault.client(**SEARCHER)  # type: ignore[arg-type]
    views = searcher.find("national_id", value, "full", "data_subject_request", "DSR-2026-7")
    return [v.meta.subject_id for v in views]


def test_a_national_id_is_found_whatever_its_separators_and_shown_as_written(
    sqlite_vault: RunningVault,
) -> None:
    subject = sqlite_vault.client().create(ADA).subject_id
    for searched in ("QQ123456C", "qq123456c", "QQ-12-34-56-C", WRITTEN):
        assert _found(sqlite_vault, searched) == [subject], searched
    assert _found(sqlite_vault, "QQ123456D") == []
    searcher = sqlite_vault.client(**SEARCHER)  # type: ignore[arg-type]
    view = searcher.get(subject, "full", "data_subject_request", "DSR-2026-7")
    assert view.fields["national_id"].value == WRITTEN


def test_a_digest_of_the_written_form_is_found_until_the_reindex_moves_it(
    sqlite_vault: RunningVault,
) -> None:
    app = sqlite_vault.app
    subject = sqlite_vault.client().create(ADA).subject_id
    # What a vault stored before comparison forms: the digest of the written form.
    indexer = app.keyring.blind_indexer()
    legacy = indexer.compute("acme", "national_id", WRITTEN)
    with app.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE blind_indexes SET digest = :d "
                "WHERE subject_id = :s AND field = 'national_id'"
            ),
            {"d": legacy, "s": subject},
        )
    assert _found(sqlite_vault, WRITTEN) == [subject]  # as before: no one is lost
    assert _found(sqlite_vault, "QQ123456C") == []  # the compact form needs the re-index

    # The documented path: rotate the blind-index key; the re-index recomputes every
    # digest over the comparison form.
    provider = LocalKeyFileProvider(sqlite_vault.settings.resolved_key_file)
    provider.add_root_version(keys.BLIND_INDEX)
    app.keyring.refresh()
    while app.reindexer.run_once():
        pass
    assert _found(sqlite_vault, "QQ123456C") == [subject]
    assert _found(sqlite_vault, WRITTEN) == [subject]
