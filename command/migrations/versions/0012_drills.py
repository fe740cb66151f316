"""drills: the drill table, and the drill that owns a drill incident or a stand-in unit

`drill`: one simulation run or tabletop exercise (scenario, status, progress, report, replay).
`incident.drill_id` and `unit.drill_id` say which drill a drill incident or a stand-in unit
belongs to (NULL for live ones and for older drill data); stand-in units mirror real units
for a tabletop exercise and are the only units a drill incident can be dispatched to.

Revision ID: 0012_drills
Revises: 0011_incident_calls
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_drills"
down_revision: str | None = "0011_incident_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drill",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("scenario", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("replay", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("speed", sa.Float(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("mode IN ('run', 'tabletop')", name=op.f("ck_drill_mode")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'finished', 'failed', 'stopped')",
            name=op.f("ck_drill_status"),
        ),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_drill_progress")),
        sa.CheckConstraint("speed IS NULL OR speed > 0", name=op.f("ck_drill_speed")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drill")),
    )  # fmt: skip
    op.add_column("incident", sa.Column("drill_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_incident_drill_id_drill"), "incident", "drill", ["drill_id"], ["id"],
        ondelete="RESTRICT",
    )  # fmt: skip
    op.create_index("ix_incident_drill_id", "incident", ["drill_id"])
    op.add_column("unit", sa.Column("drill_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_unit_drill_id", "unit", ["drill_id"])


def downgrade() -> None:
    op.drop_index("ix_unit_drill_id", table_name="unit")
    op.drop_column("unit", "drill_id")
    op.drop_index("ix_incident_drill_id", table_name="incident")
    op.drop_constraint(op.f("fk_incident_drill_id_drill"), "incident", type_="foreignkey")
    op.drop_column("incident", "drill_id")
    op.drop_table("drill")
