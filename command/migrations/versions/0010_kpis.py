"""kpis: stock low-water marks and the incident window index

`stock.low_water` (nullable): below it an item is listed by GET /api/kpis.
`ix_incident_drill_reported` serves the KPIs' window (incidents reported in [since, until),
drills apart). Task and incident status times already exist (`task.assigned_at`,
`task.on_scene_at`, ...): no new timestamp columns.

Revision ID: 0010_kpis
Revises: 0009_place_index
Create Date: 2026-12-20 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_kpis"
down_revision: str | None = "0009_place_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("stock", sa.Column("low_water", sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_stock_low_water"), "stock", "low_water IS NULL OR low_water >= 0"
    )
    op.create_index("ix_incident_drill_reported", "incident", ["drill", "reported_at"])


def downgrade() -> None:
    op.drop_index("ix_incident_drill_reported", table_name="incident")
    op.drop_constraint(op.f("ck_stock_low_water"), "stock", type_="check")
    op.drop_column("stock", "low_water")
