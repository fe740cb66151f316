"""Bulk snapping and many routes from one tree give what the one-at-a-time calls give."""

from __future__ import annotations

import numpy as np
import pytest

from gis.engine import Closures


def _points(engine, rng, k):
    g = engine.graph
    nodes = rng.integers(0, g.n_nodes, k)
    return (g.node_lon[nodes] + rng.normal(0, 3e-4, k), g.node_lat[nodes] + rng.normal(0, 3e-4, k))


def test_snap_many_equals_snap(drive_engine):
    rng = np.random.default_rng(5)
    lons, lats = _points(drive_engine, rng, 200)
    bulk = drive_engine.snap_many(lons.tolist(), lats.tolist())
    one = [drive_engine.snap(float(a), float(b)) for a, b in zip(lons, lats, strict=True)]
    for b, o in zip(bulk, one, strict=True):
        assert b is not None
        assert b.distance_m == pytest.approx(o.distance_m, abs=1e-6)
    # Equally near roads (a junction) may be chosen differently: the drive times still agree.
    target = [one[0]]
    np.testing.assert_allclose(
        drive_engine.matrix(bulk, target).durations_s,
        drive_engine.matrix(one, target).durations_s,
        atol=1e-6,
    )
    # Cached the second time, and None where no road is near.
    assert drive_engine.snap_many(lons.tolist(), lats.tolist()) == bulk
    west, south, _, _ = drive_engine.graph.bbox()
    assert drive_engine.snap_many([west - 0.5], [south - 0.5]) == [None]


def test_routes_to_equals_route(drive_engine):
    rng = np.random.default_rng(9)
    lons, lats = _points(drive_engine, rng, 25)
    snaps = [s for s in drive_engine.snap_many(lons.tolist(), lats.tolist()) if s is not None]
    dest, origins = snaps[0], snaps[1:]
    g = drive_engine.graph
    for closures in (Closures(), Closures(edge_ids=tuple(int(e) for e, _ in origins[0].edges))):
        bulk = drive_engine.routes_to(dest, origins, closures=closures)
        for origin, got in zip(origins, bulk, strict=True):
            want = drive_engine.route(origin, dest, closures=closures)
            assert (want is None) == (got is None)
            if want is None:
                continue
            assert got.eta_s == pytest.approx(want.eta_s, abs=1e-6)
            assert got.length_m == pytest.approx(want.length_m, abs=1e-3)
            np.testing.assert_allclose(got.coords[0], [origin.lon, origin.lat], atol=1e-6)
            np.testing.assert_allclose(got.coords[-1], [dest.lon, dest.lat], atol=1e-6)
            assert all(closures.edge_ids.count(e) == 0 for e in got.edge_ids[1:-1])
            whole = sum(float(g.edge_time_s[e]) for e in got.edge_ids[1:-1])
            assert whole <= got.eta_s + 1e-6
