"""warning zones

Revision ID: 0004
Revises: 0003

Warning zones: areas under warning; those that block roads are closed to routing.
Create Date: 2026-11-22 02:17:12.315278
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2  # noqa: F401
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_geospatial_table(
        "warning_zone",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("blocks_roads", sa.Boolean(), nullable=False),
        sa.Column("drill", sa.Boolean(), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "starts_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
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
            "GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON')",
            name=op.f("ck_warning_zone_geom_type"),
        ),
        sa.CheckConstraint(
            "severity IN ('minor', 'moderate', 'severe', 'extreme')",
            name=op.f("ck_warning_zone_severity"),
        ),
        sa.CheckConstraint("status IN ('active', 'ended')", name=op.f("ck_warning_zone_status")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_warning_zone_geom_valid")),
        sa.CheckConstraint(
            "ends_at IS NULL OR ends_at > starts_at", name=op.f("ck_warning_zone_period")
        ),
        sa.CheckConstraint(
            "geom IS NULL OR (ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 AND ST_YMax(geom) <= 90)",
            name=op.f("ck_warning_zone_geom_range"),
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alert.id"], name=op.f("fk_warning_zone_alert_id_alert")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warning_zone")),
    )
    op.create_geospatial_index(
        "idx_warning_zone_geom",
        "warning_zone",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )


def downgrade() -> None:
    op.drop_geospatial_index(
        "idx_warning_zone_geom",
        table_name="warning_zone",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("warning_zone")
