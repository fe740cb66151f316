"""Backup and restore benchmark: the demo city (Columbus) plus 10,000 incidents.

Run with ``uv run python -m bench.backup`` (``--quick``: the tests' city, Helsinki, 1,000
incidents and one run). On a throwaway PostGIS database it seeds the city (stations,
units, shelters, stock, place index, road tables), inserts the incidents in bulk with a
task for every fifth and times, median of 3:

- **backup**: ``emergency backup`` in-process (snapshot, ``pg_dump -Fc``, row counts in
  the same snapshot, the tar with manifest and checkpoints);
- **restore**: ``emergency restore`` into a new empty database each run (checks, one
  transaction through psql, every count checked before commit);
- **the peer**: plain ``pg_dump -Fc`` and ``pg_restore --single-transaction`` of the same
  database with no manifest and no checks. pg_restore runs as the cluster's superuser:
  as the application's role, a plain restore stops at ``COMMENT ON EXTENSION postgis``.

It prints the medians, sizes and the ratios, writes bench/results/backup.json and drops
its databases.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.fresh import report_on_fresh_database
from command import roads
from command.backup import backup, engine_for, find_tool, pg_env, server_major
from command.restore import restore
from command.seed import seed_demo
from core.config import Settings
from core.db import make_engine, make_sessionmaker, session_scope
from tests.support.db import admin_url, create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "backup.json"
CENTRES = {"columbus": (-82.9988, 39.9612), "helsinki": (24.9384, 60.1699)}


def quiet(_: str) -> None:
    """No progress bar in a benchmark."""


def seed(url: str, city: str, incidents: int) -> float:
    """The city, then ``incidents`` incidents in one statement (a task for every fifth)."""
    t0 = time.perf_counter()
    settings = Settings(env="test", database_url=url, demo_city=city)
    network = roads.load(settings)
    engine = make_engine(url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            seed_demo(session, city=city, network=network)
        lon, lat = CENTRES[city]
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO incident (title, type, severity, status, source, drill, geom, "
                    "reported_at) SELECT '事故 ' || i, "
                    "(ARRAY['fire','medical','flood'])[1 + i % 3], "
                    "(ARRAY['minor','moderate','severe'])[1 + i % 3], 'closed', 'phone', false, "
                    "ST_SetSRID(ST_MakePoint(:lon + (random() - 0.5) * 0.2, "
                    ":lat + (random() - 0.5) * 0.2), 4326), now() - i * interval '1 minute' "
                    "FROM generate_series(1, :n) AS i"
                ),
                {"lon": lon, "lat": lat, "n": incidents},
            )
            conn.execute(
                text(
                    "INSERT INTO task (incident_id, unit_id, status, drill, assigned_at, done_at) "
                    "SELECT i.id, u.id, 'done', false, i.reported_at, i.reported_at + "
                    "interval '40 minutes' FROM incident i JOIN LATERAL (SELECT id FROM unit "
                    "ORDER BY id OFFSET (i.id % 20) LIMIT 1) u ON true WHERE i.id % 5 = 0"
                )
            )
    finally:
        engine.dispose()
    return time.perf_counter() - t0


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = work()
    return time.perf_counter() - t0, out


def on_new_database(work: Callable[[str], Any]) -> tuple[float, Any]:
    """``work(url)`` timed, on a new empty PostGIS database dropped afterwards."""
    url = create_database("emergency_bench_restore")
    try:
        return timed(lambda: work(url))
    finally:
        drop_database(url)


def restore_into(archive: Path, url: str) -> dict[str, Any]:
    settings = Settings(env="test", database_url=url)
    return restore(settings, archive, replace=False, checkpoint_dir=None, stage=quiet)


def peer_dump(url: str, dump: Path, major: int) -> None:
    subprocess.run(  # noqa: S603 - fixed argv
        [str(find_tool("pg_dump", major)), "--format=custom", "--file", str(dump)],
        env=pg_env(url), check=True, capture_output=True,
    )  # fmt: skip


def peer_restore(dump: Path, url: str, *, major: int) -> None:
    env = pg_env(url)
    env["PGUSER"] = os.environ.get("BENCH_SUPERUSER", "postgres")
    env.pop("PGPASSWORD", None)
    subprocess.run(  # noqa: S603 - fixed argv
        [str(find_tool("pg_restore", major)), "--no-owner", "--no-privileges",
         "--single-transaction", "--exit-on-error", "--dbname", make_url(url).database or "",
         str(dump)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip


def run(url: str, *, city: str, incidents: int, runs: int) -> dict[str, Any]:
    seed_s = seed(url, city, incidents)
    settings = Settings(env="test", database_url=url)
    engine = engine_for(url)
    with engine.connect() as conn:
        major = server_major(conn)
        n_incidents = int(conn.scalar(text("SELECT count(*) FROM incident")) or 0)
        n_tasks = int(conn.scalar(text("SELECT count(*) FROM task")) or 0)
    engine.dispose()
    folder = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    backup_s, restore_s, peer_dump_s, peer_restore_s = [], [], [], []
    summary: dict[str, Any] = {}
    for i in range(runs):
        archive, dump = folder / f"city-{i}.backup", folder / f"plain-{i}.dump"
        seconds, summary = timed(partial(backup, settings, archive, force=True, stage=quiet))
        backup_s.append(seconds)
        seconds, restored = on_new_database(partial(restore_into, archive))
        restore_s.append(seconds)
        assert restored["rows"] == summary["rows"], (restored, summary)
        seconds, _ = timed(partial(peer_dump, url, dump, major))
        peer_dump_s.append(seconds)
        seconds, _ = on_new_database(partial(peer_restore, dump, major=major))
        peer_restore_s.append(seconds)
    archive_bytes = (folder / "city-0.backup").stat().st_size
    dump_bytes = (folder / "plain-0.dump").stat().st_size
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    med = statistics.median
    return {
        "quick": incidents < 10_000,
        "city": city,
        "incidents": n_incidents,
        "tasks": n_tasks,
        "tables": summary["tables"],
        "rows": summary["rows"],
        "runs": runs,
        "seed_s": round(seed_s, 2),
        "backup_s": round(med(backup_s), 3),
        "restore_s": round(med(restore_s), 3),
        "archive_mb": round(archive_bytes / 1e6, 2),
        "peer_dump_s": round(med(peer_dump_s), 3),
        "peer_restore_s": round(med(peer_restore_s), 3),
        "peer_dump_mb": round(dump_bytes / 1e6, 2),
        "ratio_backup_vs_pg_dump": round(med(backup_s) / med(peer_dump_s), 2),
        "ratio_restore_vs_pg_restore": round(med(restore_s) / med(peer_restore_s), 2),
        "all_backup_s": [round(s, 3) for s in backup_s],
        "all_restore_s": [round(s, 3) for s in restore_s],
        "server": make_url(admin_url()).host,
    }


def render(r: dict[str, Any]) -> str:
    return "\n".join([
        f"{r['city']} + {r['incidents']:,} incidents, {r['tasks']:,} tasks: {r['tables']} tables, "
        f"{r['rows']:,} rows (seeded in {r['seed_s']} s); median of {r['runs']}:",
        f"  {'':28} {'seconds':>8} {'MB':>7}",
        f"  {'emergency backup':28} {r['backup_s']:8.2f} {r['archive_mb']:7.2f}",
        f"  {'pg_dump -Fc (peer)':28} {r['peer_dump_s']:8.2f} {r['peer_dump_mb']:7.2f}",
        f"  {'emergency restore':28} {r['restore_s']:8.2f}",
        f"  {'pg_restore -1 (peer)':28} {r['peer_restore_s']:8.2f}",
        f"ratios: backup / pg_dump {r['ratio_backup_vs_pg_dump']}x, "
        f"restore / pg_restore {r['ratio_restore_vs_pg_restore']}x",
    ])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Helsinki, 1,000 incidents, one run")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    city, n, runs = ("helsinki", 1000, 1) if args.quick else ("columbus", 10_000, 3)
    return report_on_fresh_database(
        lambda url: run(url, city=city, incidents=n, runs=runs), render, args.out, ROOT
    )


if __name__ == "__main__":
    sys.exit(main())
