"""Import benchmark: 10,000 shelters from a GeoPackage in EPSG:4547, against one POST each.

Run with ``uv run python -m bench.gis_import`` (``--quick`` for 1,000 shelters and one
run). It makes a throwaway PostGIS database and a GeoPackage of shelters around Wuhan in
the CGCS2000 Gauss-Kruger zone at 114E, with Chinese column names and a hazard column
mapped to the shelters' hazards, as a civil-affairs register comes. It times, in one run:

- **import**: ``emergency import shelters FILE --mapping M`` done in-process (read the
  file, reproject, check every row, upsert, audit each row, commit); the shelters are
  deleted between runs, so each run creates them all;
- **import again**: the same file on top (every row unchanged);
- **import, every row changed**: a capacity column raised by one;
- **the peer**: today's only way in, one ``POST /api/shelters`` per shelter to the real
  server (``emergency serve``) on one keep-alive connection, for a sample of the rows.

It prints medians and the ratio of rows per second, and drops the database.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx2 as httpx
import numpy as np
import shapely
from sqlalchemy import text

from bench.fresh import report_on_fresh_database, sign_in
from command.auth import service as auth
from core.db import make_engine, make_sessionmaker, session_scope
from core.security import SYSTEM
from resources.imports.mapping import parse_mapping
from resources.imports.service import import_frame, read_file
from tests.support.servers import running_server

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "gis_import.json"
SEED = 19
USERNAME = "bench-admin"
MAPPING = {
    "fields": {"external_id": "编号", "name": "名称", "capacity": "容纳人数", "hazards": "灾种",
               "address": "地址"},
    "values": {"hazards": {"地震": "earthquake", "洪涝": "flood", "火灾": "fire", "*": "other"}},
}  # fmt: skip
HAZARDS = ("地震", "洪涝", "地震;洪涝", "火灾", "地震、火灾")


def shelters(n: int, capacity_bump: int = 0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(SEED)
    lon = rng.uniform(113.9, 114.7, n)
    lat = rng.uniform(30.3, 30.9, n)
    frame = gpd.GeoDataFrame(
        {
            "编号": [f"WH-{i:06d}" for i in range(n)],
            "名称": [f"避难场所{i}" for i in range(n)],
            "容纳人数": rng.integers(100, 20_000, n) + capacity_bump,
            "灾种": [HAZARDS[i % len(HAZARDS)] for i in range(n)],
            "地址": [f"武汉市某区某路{i}号" for i in range(n)],
            "管理单位": ["区应急管理局"] * n,  # no field takes it: kept in attributes
        },
        geometry=shapely.points(lon, lat),
        crs=4326,
    )
    return frame.to_crs("EPSG:4547")


def import_once(factory: Any, path: Path) -> dict[str, Any]:
    rules = parse_mapping(MAPPING)
    with session_scope(factory) as session:
        frame = read_file("shelters", path, rules)
        summary = import_frame(session, "shelters", frame, rules, principal=SYSTEM)
    assert summary.stored
    assert not summary.refused, summary.refused[:3]
    return summary.as_dict()


def run(url: str, *, n: int, runs: int, peer_rows: int) -> dict[str, Any]:
    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    path, changed = folder / "shelters.gpkg", folder / "shelters_changed.gpkg"
    shelters(n).to_file(path, engine="pyogrio")
    shelters(n, capacity_bump=1).to_file(changed, engine="pyogrio")
    size_mb = path.stat().st_size / 1e6
    import_once(factory, path)  # warm: imports, prepared statements, caches
    create_s, again_s, changed_s = [], [], []
    for _ in range(runs):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM shelter"))
        t0 = time.perf_counter()
        first = import_once(factory, path)
        create_s.append(time.perf_counter() - t0)
        assert first["created"] == n, first
        t0 = time.perf_counter()
        again = import_once(factory, path)
        again_s.append(time.perf_counter() - t0)
        assert (again["created"], again["unchanged"]) == (0, n), again
        t0 = time.perf_counter()
        updated = import_once(factory, changed)
        changed_s.append(time.perf_counter() - t0)
        assert updated["updated"] == n, updated
        import_once(factory, path)  # back to the original capacities for the next run
    with engine.connect() as conn:
        audit = int(conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one())
    # The peer: one POST per shelter, the only way in before `emergency import`.
    password = secrets.token_urlsafe(18)
    with session_scope(factory) as session:
        auth.add_user(session, username=USERNAME, password=password, role="admin")
    frame = shelters(peer_rows).to_crs(4326)
    post_s: list[float] = []
    with (
        running_server(url, secrets.token_urlsafe(36)) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        sign_in(client, USERNAME, password)
        for i, row in enumerate(frame.itertuples()):
            body = {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [row.geometry.x, row.geometry.y]},
                "properties": {"name": row.名称, "capacity": int(row.容纳人数),
                               "external_id": f"POST-{i:06d}", "address": row.地址},
            }  # fmt: skip
            t0 = time.perf_counter()
            r = client.post("/api/shelters", json=body)
            post_s.append(time.perf_counter() - t0)
            r.raise_for_status()
    engine.dispose()
    median = statistics.median(create_s)
    post_each = statistics.median(post_s)
    return {
        "quick": n < 10_000,
        "rows": n,
        "file_mb": round(size_mb, 2),
        "runs": runs,
        "import_s": round(median, 3),
        "import_rows_per_s": round(n / median),
        "import_again_s": round(statistics.median(again_s), 3),
        "import_changed_s": round(statistics.median(changed_s), 3),
        "audit_rows": audit,
        "peer_rows": peer_rows,
        "peer_post_ms_median": round(post_each * 1000, 2),
        "peer_rows_per_s": round(1 / post_each),
        "peer_for_all_rows_s": round(post_each * n, 1),
        "ratio_import_vs_posts": round((post_each * n) / median, 1),
        "target_s": 10.0,
        "ok": median < 10.0,
    }


def render(r: dict[str, Any]) -> str:
    return "\n".join([
        f"import {r['rows']:,} shelters (GeoPackage, EPSG:4547, {r['file_mb']} MB), "
        f"median of {r['runs']}:",
        f"  import (all created)      {r['import_s']:8.2f} s  ({r['import_rows_per_s']:,} rows/s;"
        f" target < {r['target_s']:.0f} s: {'ok' if r['ok'] else 'MISSED'})",
        f"  import again (unchanged)  {r['import_again_s']:8.2f} s",
        f"  import, every row changed {r['import_changed_s']:8.2f} s",
        f"peer: one POST /api/shelters each ({r['peer_rows']} sampled): median "
        f"{r['peer_post_ms_median']} ms, {r['peer_rows_per_s']:,} rows/s, "
        f"{r['peer_for_all_rows_s']} s for {r['rows']:,}",
        f"ratio: import is {r['ratio_import_vs_posts']}x one POST per row",
    ])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 rows, one run")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    n, runs, peer = (1000, 1, 50) if args.quick else (10_000, 3, 500)
    return report_on_fresh_database(
        lambda url: run(url, n=n, runs=runs, peer_rows=peer), render, args.out, ROOT
    )


if __name__ == "__main__":
    sys.exit(main())
