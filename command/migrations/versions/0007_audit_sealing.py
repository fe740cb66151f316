"""audit sealing

Keyed audit links and sealing after commit (docs/security.md): the chain's identity
(audit_chain, one row made here, so it survives a backup and restore), the key each link
was made with (audit_event.key_id; rows already there keep plain SHA-256 links and are
named by audit_chain.legacy_until_id), and the stage writers put changes in
(pending_change), which the sealer empties.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 20:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A seal pass's first step in one round trip: wait for the seal lock (one pass at a time,
# across processes), then read the head and the staged rows with a snapshot taken after
# the lock was granted (each query of a volatile function takes its own).
SEAL_TAKE = """
CREATE FUNCTION audit_seal_take(max_rows integer)
RETURNS TABLE (o_chain uuid, o_head text, o_id bigint, o_body text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1936023916);  -- 'seal'
    RETURN QUERY
        SELECT c.id, (SELECT a.hash FROM audit_event a ORDER BY a.id DESC LIMIT 1)::text,
               p.id, p.body
        FROM audit_chain c,
             (SELECT s.id, s.body FROM pending_change s ORDER BY s.id LIMIT max_rows) p;
END;
$$;
"""

CHAIN_APPEND_ONLY = """
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
"""


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("key_id", sa.String(length=32), nullable=True))
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("legacy_until_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    op.execute(
        "INSERT INTO audit_chain (id, created_at, legacy_until_id) "
        "SELECT gen_random_uuid(), now(), max(id) FROM audit_event"
    )
    op.execute(CHAIN_APPEND_ONLY)
    op.create_table(
        "pending_change",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("action", sa.String(length=80), nullable=False),
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=80), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("topics", postgresql.ARRAY(sa.String(length=80)), nullable=False),
        sa.Column(
            "payload", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_change")),
    )
    op.execute(SEAL_TAKE)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS audit_seal_take(integer)")
    op.drop_table("pending_change")
    op.execute("DROP TRIGGER IF EXISTS audit_chain_no_truncate ON audit_chain")
    op.execute("DROP TRIGGER IF EXISTS audit_chain_no_update ON audit_chain")
    op.drop_table("audit_chain")
    op.drop_column("audit_event", "key_id")
