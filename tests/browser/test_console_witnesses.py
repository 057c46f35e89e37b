"""The log-integrity page checks witness cosignatures itself, with the witnesses' public
keys: a real witness process cosigns the vault's checkpoints (verified); a cosignature
row altered in the database is invalid; one by a witness the console has no key for is
unverifiable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import audit
from tests.browser.conftest import (
    Clock,
    Console,
    axe_violations,
    screenshot,
    serving_console,
    sign_in,
)
from tests.console_seed import seed, wait_for_checkpoint
from tests.integration.harness import running_vault, settings_for
from tests.integration.witnessing import WITNESS_NAME, witness_process
from vault import key_custody
from vault.config import WitnessSettings
from vault.web import WebSettings

FORGED, STRANGER = "witness.test/w2", "witness.test/w3"


def _cosigned_size(engine: sa.Engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT max(size) FROM audit_cosignatures WHERE witness = :w"),
            {"w": WITNESS_NAME},
        ).scalar()


def _store(engine: sa.Engine, signer: audit.CosignatureSigner, origin: str, root: bytes) -> None:
    """A cosignature row as the publisher would store it, of the newest cosigned tree,
    signed over `root` (not necessarily the tree's)."""
    with engine.begin() as conn:
        size, stored_root = conn.execute(
            sa.text(
                "SELECT size, root_hash FROM audit_cosignatures WHERE witness = :w "
                "ORDER BY size DESC LIMIT 1"
            ),
            {"w": WITNESS_NAME},
        ).one()
        line = signer.cosign(audit.Checkpoint(origin, size, root or stored_root), 1_800_000_000)
        conn.execute(
            sa.text(
                "INSERT INTO audit_cosignatures (witness, size, root_hash, line, cosigned_at) "
                "VALUES (:w, :s, :r, :l, 1800000000)"
            ),
            {"w": signer.name, "s": size, "r": bytes(stored_root), "l": line},
        )


@pytest.fixture
def witnessed_console(tmp_path: Path) -> Iterator[Console]:
    data = tmp_path / "data"
    key_custody.init_keys(settings_for(data, None))
    base = settings_for(data, None)
    signer = audit.CheckpointSigner(base.resolved_audit_signing_key.read_bytes(), base.audit_origin)
    keys = {}
    for name in (FORGED, STRANGER):
        private, _ = audit.generate_signing_key(tmp_path / f"{name.rsplit('/', 1)[1]}.pem")
        keys[name] = audit.CosignatureSigner(private.read_bytes(), name)
    with witness_process(tmp_path / "witness", signer.verifier_key) as witness:
        settings = settings_for(
            data,
            None,
            audit_witnesses=[
                WitnessSettings(name=WITNESS_NAME, url=witness.url, key=witness.verifier_key)
            ],
            audit_publish_interval_seconds=0.2,
        )
        with running_vault(settings) as vault:
            subjects = seed(vault)
            wait_for_checkpoint(vault)
            engine = vault.app.db.engine
            deadline = time.monotonic() + 60  # a loaded machine; polled, not timed
            while _cosigned_size(engine) is None:
                assert time.monotonic() < deadline, "the witness never cosigned"
                time.sleep(0.1)
            _store(engine, keys[FORGED], settings.audit_origin, b"\x07" * 32)
            _store(engine, keys[STRANGER], settings.audit_origin, b"")
            web = WebSettings(
                vault_address=vault.address,
                audit_public_key=vault.settings.audit_public_key,
                # The console knows the real witness and w2, not w3.
                witness_keys=(witness.verifier_key, keys[FORGED].verifier_key),
            )
            clock = Clock()
            with serving_console(web, clock.now) as url:
                yield Console(vault, url, clock, subjects)


def test_witness_cosignatures_are_verified_on_the_integrity_page(
    witnessed_console: Console, page: Any
) -> None:
    console = witnessed_console
    sign_in(page, console, "compliance")
    page.get_by_role("link", name="Log integrity").click()
    page.wait_for_load_state()
    rows = {
        li.locator("code").inner_text(): li.inner_text()
        for li in page.locator("ul.witnesses li").all()
    }
    assert set(rows) == {WITNESS_NAME, FORGED, STRANGER}
    assert "✔ verified" in rows[WITNESS_NAME]
    assert "checked here with the witness's key" in rows[WITNESS_NAME]
    assert "✘ invalid" in rows[FORGED] and "does NOT verify" in rows[FORGED]
    assert "? unverifiable" in rows[STRANGER]
    screenshot(page, "12-integrity-witnesses")
    assert axe_violations(page) == []
