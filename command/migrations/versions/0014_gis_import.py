"""gis import: attributes kept from a city's own files, units by external id, GIS roads

`attributes` (jsonb) on station, shelter, warehouse and unit: the columns of an imported
file that no field took, kept as they were. `unit.external_id`: the upsert key of
`emergency import units` (stations, shelters and warehouses have one already).
`shelter.hazards`: what a shelter is designated for (earthquake, flood, ...), as the
civil-affairs registers of 应急避难场所 list it.
`road_network.kind` (`osm` or `gis`) and `road_network.mapping`: a network loaded by
`emergency load-roads` is rebuilt by the server from its file and this mapping.

Revision ID: 0014_gis_import
Revises: 0013_avl
Create Date: 2026-12-06 11:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014_gis_import"
down_revision: str | None = "0013_avl"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("station", "shelter", "warehouse", "unit")
HAZARDS = (
    "earthquake", "flood", "typhoon", "fire", "landslide", "tsunami", "chemical", "epidemic",
    "other",
)  # fmt: skip


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("attributes", postgresql.JSONB(), nullable=True))
    op.add_column("unit", sa.Column("external_id", sa.String(80), nullable=True))
    op.create_unique_constraint(op.f("uq_unit_external_id"), "unit", ["external_id"])
    op.add_column(
        "shelter",
        sa.Column(
            "hazards",
            postgresql.ARRAY(sa.String(40)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_shelter_hazards"),
        "shelter",
        "hazards <@ ARRAY[" + ", ".join(f"'{h}'" for h in HAZARDS) + "]::varchar[]",
    )
    op.add_column(
        "road_network",
        sa.Column("kind", sa.String(10), server_default="osm", nullable=False),
    )
    op.add_column("road_network", sa.Column("mapping", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("road_network", "mapping")
    op.drop_column("road_network", "kind")
    op.drop_column("shelter", "hazards")
    op.drop_constraint(op.f("uq_unit_external_id"), "unit", type_="unique")
    op.drop_column("unit", "external_id")
    for table in TABLES:
        op.drop_column(table, "attributes")
