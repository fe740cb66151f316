"""incident calls: the calls taken about an incident, and the caller's phone

`incident_call`: one row per call (the first one creates a manual incident, later ones are
attached to it). `caller_phone` is personal data, blanked after the retention period
(`phone_purged_at` says when). `incident.calls` counts them, so the count travels in the
incident's events; existing incidents get no call rows and `calls = 0`.

Revision ID: 0011_incident_calls
Revises: 0010_kpis
Create Date: 2026-12-21 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_incident_calls"
down_revision: str | None = "0010_kpis"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "incident",
        sa.Column("calls", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_check_constraint(op.f("ck_incident_calls"), "incident", "calls >= 0")
    op.create_table(
        "incident_call",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("caller_phone", sa.String(length=32), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("people_affected", sa.Integer(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("taken_by", sa.String(length=160), nullable=False),
        sa.Column("drill", sa.Boolean(), nullable=False),
        sa.Column("phone_purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "people_affected IS NULL OR people_affected >= 0",
            name=op.f("ck_incident_call_people"),
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
            name=op.f("fk_incident_call_incident_id_incident"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_call")),
    )
    op.create_index(
        "ix_incident_call_incident_received", "incident_call", ["incident_id", "received_at"]
    )
    op.create_index(
        "ix_incident_call_phone_received",
        "incident_call",
        ["received_at"],
        postgresql_where=sa.text("caller_phone IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_incident_call_phone_received", table_name="incident_call")
    op.drop_index("ix_incident_call_incident_received", table_name="incident_call")
    op.drop_table("incident_call")
    op.drop_constraint(op.f("ck_incident_calls"), "incident", type_="check")
    op.drop_column("incident", "calls")
