"""Schema migrations, run programmatically (``customer-vault migrate``; ``serve`` on the
embedded default runs them itself). Several replicas may start at once: on PostgreSQL
an advisory lock makes exactly one of them migrate while the others wait."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

_LOCK_KEY = 0x5641554C  # "VAUL": an arbitrary, fixed advisory-lock key for migrations


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "vault.storage:migrations")
    return config


def upgrade(engine: Engine) -> None:
    """Bring the vault schema to the newest revision."""
    config = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")


def step_back(engine: Engine, revision: str) -> None:
    """Undo `revision` alone (Alembic's `<revision>@-1`), leaving every other branch
    as it is: for a rollback to a release before it (docs/operations.md, "Upgrades")."""
    config = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        config.attributes["connection"] = conn
        command.downgrade(config, f"{revision}@-1")


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest revision of every branch.

    Capabilities add their tables on their own branches off a common base (consent,
    retention, ...), so there may be several heads; all must be applied.
    """
    heads = set(ScriptDirectory.from_config(_config()).get_heads())
    with engine.connect() as conn:
        current = set(
            MigrationContext.configure(
                conn, opts={"version_table": "vault_alembic_version"}
            ).get_current_heads()
        )
    return current == heads
