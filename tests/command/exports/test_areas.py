"""KPIs by area without a database: the grid's zone and cells, and each cell's figures
against numpy and the target rules (dispatch/targets.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import Point

from command.exports.areas import Arrival, cells, figures_of, grid_epsg, utm_epsg
from dispatch.targets import TargetTable

AS_OF = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TABLE = TargetTable()  # fire: 60 + 300 s; others 60 + 480 s


def arrival(
    lon: float, lat: float, *, type: str = "fire", ago_s: float = 3600, dispatch_s: float | None = None,
    response_s: float | None = None,
) -> Arrival:  # fmt: skip
    reported = AS_OF - timedelta(seconds=ago_s)
    return Arrival(
        type,
        lon,
        lat,
        reported,
        None if dispatch_s is None else reported + timedelta(seconds=dispatch_s),
        None if response_s is None else reported + timedelta(seconds=response_s),
    )


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [(24.94, 60.17, 32635), (116.4, 39.9, 32650), (-74.0, 40.7, 32618), (151.2, -33.9, 32756),
     (-180.0, 0.0, 32601), (180.0, 1.0, 32660)],
)  # fmt: skip
def test_utm_zone(lon: float, lat: float, epsg: int) -> None:
    assert utm_epsg(lon, lat) == epsg


def test_figures_are_numpys_percentiles_and_the_target_rules() -> None:
    group = [
        arrival(0, 0, dispatch_s=30, response_s=200),  # within 360
        arrival(0, 0, dispatch_s=90, response_s=400),  # missed
        arrival(0, 0, type="medical", dispatch_s=20, response_s=540),  # within 540: on the target
        arrival(0, 0, ago_s=100),  # pending: nobody there, 100 s of 360 gone
        arrival(0, 0, ago_s=400),  # missed: nobody there, target passed
    ]
    got = figures_of(group, table=TABLE, as_of=AS_OF)
    assert got["incidents"] == 5 and got["dispatched"] == 3 and got["responded"] == 3
    assert got["dispatch_p50_s"] == pytest.approx(np.percentile([30, 90, 20], 50))
    assert got["dispatch_p90_s"] == pytest.approx(np.percentile([30, 90, 20], 90))
    assert got["response_p50_s"] == pytest.approx(400.0)
    assert got["response_p90_s"] == pytest.approx(np.percentile([200, 400, 540], 90))
    assert (got["within"], got["missed"], got["pending"]) == (2, 2, 1)
    assert got["within_share"] == 0.5
    assert got["types"] == {"fire": 4, "medical": 1}
    empty = figures_of([arrival(0, 0, ago_s=10)], table=TABLE, as_of=AS_OF)
    assert empty["response_p50_s"] is None and empty["within_share"] is None


def test_cells_are_squares_of_the_side_holding_their_incidents() -> None:
    rng = np.random.default_rng(19)
    group = [
        arrival(24.9 + float(dx), 60.15 + float(dy), response_s=100)
        for dx, dy in zip(rng.uniform(0, 0.1, 200), rng.uniform(0, 0.05, 200), strict=True)
    ]
    epsg = grid_epsg(group)
    assert epsg == 32635
    found = cells(group, cell_m=1000, epsg=epsg, table=TABLE, as_of=AS_OF)
    assert sum(figures["incidents"] for figures, _ in found) == 200
    geod = Geod(ellps="WGS84")
    seen = 0
    for figures, square in found:
        assert figures["cell"] == f"32635:{figures['x_m'] // 1000}:{figures['y_m'] // 1000}"
        # UTM's scale factor is 0.9996 at the central meridian, up to ~1.0004 at 3 degrees.
        assert abs(geod.geometry_area_perimeter(square)[0]) == pytest.approx(1e6, rel=2e-3)
        inside = [a for a in group if square.contains(Point(a.lon, a.lat))]
        assert len(inside) == figures["incidents"]
        seen += len(inside)
    assert seen == 200  # every incident in exactly one square
    assert cells([], cell_m=1000, epsg=epsg, table=TABLE, as_of=AS_OF) == []
