"""One-time customer links (migration 0005_customer_links): single use is enforced here.

A row is keyed by the SHA-256 of the link's id (never the link itself). `redeem` marks it
used with one conditional UPDATE, so of two concurrent redemptions exactly one succeeds;
an expired or used row stays refused.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.storage.tables import metadata

customer_links = sa.Table(
    "customer_links",
    metadata,
    sa.Column("link_hash", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column(
        "subject_id",
        sa.String(40),
        sa.ForeignKey("subjects.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("used_at", sa.BigInteger, nullable=True),
    sa.Index("ix_customer_links_expiry", "expires_at"),
)


def put(
    conn: Connection,
    *,
    link_hash: str,
    tenant: str,
    subject_id: str,
    created_at: int,
    expires_at: int,
) -> None:
    conn.execute(
        customer_links.insert().values(
            link_hash=link_hash,
            tenant=tenant,
            subject_id=subject_id,
            created_at=created_at,
            expires_at=expires_at,
        )
    )


def redeem(conn: Connection, link_hash: str, *, subject_id: str, tenant: str, now: int) -> bool:
    """Mark the link used if it is unused, unexpired and names this subject and tenant;
    False otherwise (the caller learns nothing more)."""
    c = customer_links.c
    result = conn.execute(
        customer_links.update()
        .where(
            c.link_hash == link_hash,
            c.subject_id == subject_id,
            c.tenant == tenant,
            c.used_at.is_(None),
            c.expires_at > now,
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


def purge_expired(conn: Connection, now: int) -> int:
    """Drop links that can no longer be used."""
    c = customer_links.c
    return conn.execute(customer_links.delete().where(c.expires_at <= now)).rowcount
