"""Scratch databases: a SQLite file in a temp folder, or a fresh PostgreSQL database.

Every PostgreSQL database the benchmark creates is named ``cv_bench_<pid>_<label>`` and
dropped at the end, so runs never see each other's rows (nor the test suite's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_version(admin_url: str) -> str | None:
    """The server's version string, or None when it cannot be reached."""
    engine = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW server_version").scalar())
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


@contextmanager
def postgres_database(admin_url: str, label: str) -> Iterator[str]:
    """Create a database for this run, yield its URL, drop it afterwards."""
    name = f"cv_bench_{os.getpid()}_{label}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def sqlite_url(folder: Path, name: str) -> str:
    return f"sqlite:///{(folder / name).resolve()}"
