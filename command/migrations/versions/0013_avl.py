"""avl: the track partitioned by day, trackers (devices), events without an audit row

`unit_position` becomes a table partitioned by range of `recorded_at`, one partition a day
(`unit_position_pYYYYMMDD`, made by `unit_position_partition(day)`, which the server calls
ahead of time and when a fix needs a day that has none). Its key is (unit_id, recorded_at):
the same unit and time twice is one fix. New columns: altitude, battery, source, flag (an
impossible jump), device. The GiST index on the track goes: it is read by unit and time.
Existing fixes are copied over (a repeated unit and time kept once).

`device`: trackers bound to a unit (the SHA-256 of their id, revocation, allowed networks).
`unit.position_speed_mps`, `unit.position_heading_deg`: the newest good fix's, for the map.
`unit.geom` loses its GiST index and the table gets fillfactor 70: a position update then
changes no indexed column and is a HOT update (no index writes).
`pending_change.body` may be NULL: an event that is not audited (the live map's positions).

Revision ID: 0013_avl
Revises: 0012_drills
Create Date: 2026-12-06 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0013_avl"
down_revision: str | None = "0012_drills"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A partition made standalone and then attached: ATTACH takes a lock that lets inserts
# into the other partitions go on (CREATE ... PARTITION OF would stop them). Two
# processes making the same day at once: the loser finds it made.
PARTITION_FUNCTION = """
CREATE FUNCTION unit_position_partition(day date) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    name text := 'unit_position_p' || to_char(day, 'YYYYMMDD');
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    BEGIN
        EXECUTE format(
            'CREATE TABLE %I (LIKE unit_position INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
            name);
        EXECUTE format(
            'ALTER TABLE %I ADD CONSTRAINT %I CHECK (recorded_at >= %L AND recorded_at < %L)',
            name, name || '_range', lo, hi);
        EXECUTE format(
            'ALTER TABLE unit_position ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
            name, lo, hi);
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', name, name || '_range');
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        NULL;
    END;
    RETURN name;
END;
$$;
"""

CHECKS = (
    ("ck_unit_position_accuracy", "accuracy_m IS NULL OR accuracy_m >= 0"),
    (
        "ck_unit_position_geom_range",
        "geom IS NULL OR (ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 "
        "AND ST_YMin(geom) >= -90 AND ST_YMax(geom) <= 90)",
    ),
    ("ck_unit_position_heading", "heading_deg IS NULL OR (heading_deg >= 0 AND heading_deg < 360)"),
    ("ck_unit_position_speed", "speed_mps IS NULL OR speed_mps >= 0"),
)


def upgrade() -> None:
    op.alter_column("pending_change", "body", existing_type=sa.Text(), nullable=True)
    op.add_column("unit", sa.Column("position_speed_mps", sa.Float(), nullable=True))
    op.add_column("unit", sa.Column("position_heading_deg", sa.Float(), nullable=True))
    op.create_table(
        "device",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("unit_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("allow_from", postgresql.ARRAY(sa.String(length=50)), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("kind IN ('secret', 'hardware')", name=op.f("ck_device_kind")),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["unit.id"], name=op.f("fk_device_unit_id_unit"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_device_token_hash")),
    )
    op.create_index(op.f("ix_device_unit_id"), "device", ["unit_id"], unique=False)

    op.execute("ALTER TABLE unit_position RENAME TO unit_position_old")
    for name, _check in CHECKS:
        op.execute(f"ALTER TABLE unit_position_old RENAME CONSTRAINT {name} TO {name}_old")
    op.execute("ALTER TABLE unit_position_old RENAME CONSTRAINT pk_unit_position TO pk_upo")
    op.execute(
        "ALTER TABLE unit_position_old RENAME CONSTRAINT fk_unit_position_unit_id_unit TO fk_upo"
    )
    op.execute("DROP INDEX IF EXISTS idx_unit_position_geom")
    op.execute("DROP INDEX IF EXISTS ix_unit_position_unit_recorded")
    op.execute("ALTER TABLE unit_position_old ALTER COLUMN id DROP IDENTITY")  # its sequence
    op.execute("CREATE SEQUENCE unit_position_id_seq AS bigint")
    op.execute(
        "SELECT setval('unit_position_id_seq', coalesce(max(id), 0) + 1, false) "
        "FROM unit_position_old"
    )
    checks = ",\n".join(f"CONSTRAINT {n} CHECK ({c})" for n, c in CHECKS)
    op.execute(
        f"""
        CREATE TABLE unit_position (
            unit_id bigint NOT NULL,
            recorded_at timestamptz NOT NULL,
            id bigint NOT NULL DEFAULT nextval('unit_position_id_seq'),
            geom geometry(POINT, 4326) NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            speed_mps double precision,
            heading_deg double precision,
            accuracy_m double precision,
            altitude_m double precision,
            battery_pct double precision,
            source varchar(10) NOT NULL DEFAULT 'api',
            flag varchar(20),
            device_id bigint,
            {checks},
            CONSTRAINT ck_unit_position_source
                CHECK (source IN ('api', 'batch', 'ws', 'osmand')),
            CONSTRAINT ck_unit_position_flag CHECK (flag IS NULL OR flag IN ('jump')),
            CONSTRAINT pk_unit_position PRIMARY KEY (unit_id, recorded_at),
            CONSTRAINT fk_unit_position_unit_id_unit FOREIGN KEY (unit_id)
                REFERENCES unit (id) ON DELETE CASCADE
        ) PARTITION BY RANGE (recorded_at)
        """
    )
    op.execute("ALTER SEQUENCE unit_position_id_seq OWNED BY unit_position.id")
    op.execute(PARTITION_FUNCTION)
    # Partitions for the days the old track holds, and today and the next two.
    op.execute(
        """
        SELECT unit_position_partition(d::date)
        FROM (SELECT DISTINCT (recorded_at AT TIME ZONE 'UTC')::date AS d
              FROM unit_position_old
              UNION SELECT generate_series((now() AT TIME ZONE 'UTC')::date - 1,
                                           (now() AT TIME ZONE 'UTC')::date + 2,
                                           interval '1 day')::date) days
        """
    )
    op.execute(
        """
        INSERT INTO unit_position (unit_id, recorded_at, id, geom, received_at, speed_mps,
                                   heading_deg, accuracy_m)
        SELECT unit_id, recorded_at, id, geom, received_at, speed_mps, heading_deg, accuracy_m
        FROM unit_position_old ORDER BY id
        ON CONFLICT (unit_id, recorded_at) DO NOTHING
        """
    )
    op.execute("DROP TABLE unit_position_old")
    # Units move many times a second: no spatial index on unit.geom, and room on each page,
    # so a move is a HOT update (no index writes). A bbox over a fleet is a short scan.
    op.execute("DROP INDEX IF EXISTS idx_unit_geom")
    op.execute("ALTER TABLE unit SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE unit RESET (fillfactor)")
    op.execute("CREATE INDEX IF NOT EXISTS idx_unit_geom ON unit USING gist (geom)")
    op.execute("ALTER TABLE unit_position RENAME TO unit_position_new")
    op.create_table(
        "unit_position",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("unit_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "geom",
            Geometry(geometry_type="POINT", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("heading_deg", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        *(sa.CheckConstraint(c, name=op.f(f"{n}_")) for n, c in CHECKS),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["unit.id"],
            name=op.f("fk_unit_position_unit_id_unit_"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_position_")),
    )
    op.execute(
        """
        INSERT INTO unit_position (id, unit_id, geom, recorded_at, received_at, speed_mps,
                                   heading_deg, accuracy_m)
        OVERRIDING SYSTEM VALUE
        SELECT id, unit_id, geom, recorded_at, received_at, speed_mps, heading_deg, accuracy_m
        FROM unit_position_new
        """
    )
    op.execute("DROP TABLE unit_position_new CASCADE")
    op.execute("DROP FUNCTION IF EXISTS unit_position_partition(date)")
    for name, _check in CHECKS:
        op.execute(f"ALTER TABLE unit_position RENAME CONSTRAINT {name}_ TO {name}")
    op.execute("ALTER TABLE unit_position RENAME CONSTRAINT pk_unit_position_ TO pk_unit_position")
    op.execute(
        "ALTER TABLE unit_position RENAME CONSTRAINT fk_unit_position_unit_id_unit_ "
        "TO fk_unit_position_unit_id_unit"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('unit_position', 'id'), "
        "coalesce(max(id), 0) + 1, false) FROM unit_position"
    )
    op.create_index(
        "idx_unit_position_geom", "unit_position", ["geom"], unique=False, postgresql_using="gist"
    )
    op.create_index(
        "ix_unit_position_unit_recorded", "unit_position", ["unit_id", "recorded_at"], unique=False
    )
    op.drop_index(op.f("ix_device_unit_id"), table_name="device")
    op.drop_table("device")
    op.drop_column("unit", "position_heading_deg")
    op.drop_column("unit", "position_speed_mps")
    op.execute("DELETE FROM pending_change WHERE body IS NULL")
    op.alter_column("pending_change", "body", existing_type=sa.Text(), nullable=False)
