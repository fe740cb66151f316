"""place index: searchable addresses, streets and named places (pg_trgm)

Revision ID: 0009_place_index
Revises: 0008
The table is replaced whole by gis.place_index.write_places from the loaded OSM file;
`search` (folded names) has a GIN trigram index, `geom` a GiST one for nearest-first.

Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2  # noqa: F401
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = "0009_place_index"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_geospatial_table(
        "place",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("search", sa.Text(), nullable=False),
        sa.Column("osm_type", sa.String(length=1), nullable=False),
        sa.Column("osm_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_place")),
    )
    op.create_geospatial_index(
        "idx_place_geom",
        "place",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        "ix_place_search_trgm",
        "place",
        ["search"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"search": "gin_trgm_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_place_search_trgm", table_name="place", postgresql_using="gin")
    op.drop_geospatial_index(
        "idx_place_geom", table_name="place", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("place")
