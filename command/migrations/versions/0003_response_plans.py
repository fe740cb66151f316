"""response plans, dispatch decisions, plan records

Revision ID: 0003
Revises: 0002

Response plans (run cards), what was recommended vs dispatched, committed supply and
evacuation plans, and shelters' planned arrivals.
Create Date: 2026-11-22 02:01:36.092471
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2  # noqa: F401
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plan_record",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("plan", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('supplies', 'evacuation')", name=op.f("ck_plan_record_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_record")),
    )
    op.create_table(
        "response_plan",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("incident_type", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("needs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "severity IN ('minor', 'moderate', 'severe', 'extreme')",
            name=op.f("ck_response_plan_severity"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response_plan")),
        sa.UniqueConstraint("incident_type", "severity", name="uq_response_plan_type_severity"),
    )
    op.create_table(
        "dispatch_decision",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("recommended", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("chosen_unit_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("task_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("followed", sa.Boolean(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_dispatch_decision_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_decision")),
    )
    op.create_index(
        op.f("ix_dispatch_decision_incident_id"), "dispatch_decision", ["incident_id"], unique=False
    )
    op.add_column(
        "shelter", sa.Column("planned_arrivals", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_shelter_planned_arrivals"), "shelter", "planned_arrivals >= 0"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_shelter_planned_arrivals"), "shelter", type_="check")
    op.drop_column("shelter", "planned_arrivals")
    op.drop_index(op.f("ix_dispatch_decision_incident_id"), table_name="dispatch_decision")
    op.drop_table("dispatch_decision")
    op.drop_table("response_plan")
    op.drop_table("plan_record")
