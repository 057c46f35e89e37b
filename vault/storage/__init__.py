"""Storage adapters: SQLAlchemy Core tables, repositories and Alembic migrations."""
