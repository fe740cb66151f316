"""road network: road_node, road_edge (with a Web Mercator copy for tiles), road_network

Revision ID: 0002
Revises: 0001
The tables replicate one compiled road graph (gis.roads_db.write_roads replaces them whole).

Create Date: 2026-11-23 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2  # noqa: F401
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _geometry(geometry_type: str, srid: int) -> Geometry:
    return Geometry(
        geometry_type=geometry_type,
        srid=srid,
        dimension=2,
        spatial_index=False,
        from_text="ST_GeomFromEWKT",
        name="geometry",
        nullable=False,
    )


def upgrade() -> None:
    op.create_geospatial_table(
        "road_node",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("osm_id", sa.BigInteger(), nullable=False),
        sa.Column("geom", _geometry("POINT", 4326), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_road_node")),
    )
    op.create_geospatial_index(
        "idx_road_node_geom",
        "road_node",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_table(
        "road_edge",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=False),
        sa.Column("reverse_id", sa.BigInteger(), nullable=True),
        sa.Column("osm_way", sa.BigInteger(), nullable=False),
        sa.Column("highway", sa.Text(), nullable=False),
        sa.Column("length_m", sa.Float(), nullable=False),
        sa.Column("travel_time_s", sa.Float(), nullable=False),
        sa.Column("speed_kph", sa.Float(), nullable=False),
        sa.Column("geom", _geometry("LINESTRING", 4326), nullable=False),
        sa.Column(
            "geom_3857",
            _geometry("LINESTRING", 3857),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_road_edge")),
        postgresql_with={"parallel_workers": 0},
    )
    op.create_geospatial_index(
        "idx_road_edge_geom",
        "road_edge",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "idx_road_edge_geom_3857",
        "road_edge",
        ["geom_3857"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_road_edge_source"), "road_edge", ["source"], unique=False)
    op.create_index(op.f("ix_road_edge_target"), "road_edge", ["target"], unique=False)
    op.create_table(
        "road_network",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("profile_key", sa.String(length=64), nullable=False),
        sa.Column("node_count", sa.Integer(), nullable=False),
        sa.Column("edge_count", sa.Integer(), nullable=False),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_road_network_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_road_network")),
    )


def downgrade() -> None:
    op.drop_table("road_network")
    op.drop_index(op.f("ix_road_edge_target"), table_name="road_edge")
    op.drop_index(op.f("ix_road_edge_source"), table_name="road_edge")
    op.drop_geospatial_index(
        "idx_road_edge_geom_3857",
        table_name="road_edge",
        postgresql_using="gist",
        column_name="geom_3857",
    )
    op.drop_geospatial_index(
        "idx_road_edge_geom", table_name="road_edge", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("road_edge")
    op.drop_geospatial_index(
        "idx_road_node_geom", table_name="road_node", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("road_node")
