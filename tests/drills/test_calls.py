"""The call stream: Poisson counts, hourly profiles, placement, historical CSVs, seeds."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from drills import calls as gen
from drills import scenario as sc
from tests.support.drills import BOX, CENTRE, scenario_dict


def test_poisson_counts_match_the_rate() -> None:
    s = sc.parse(scenario_dict(duration_s=30 * 86_400))
    c = gen.generate(s, 0)
    expected = s.expected_incidents()
    assert abs(len(c) - expected) < 4 * np.sqrt(expected)
    assert np.all(np.diff(c.t_s) >= 0)
    assert c.t_s.min() >= 0 and c.t_s.max() < s.duration_s


def test_an_hourly_profile_shapes_the_day() -> None:
    profile = [0.0] * 24
    profile[9] = profile[21] = 12.0  # local hours, start at 08:30+03:00
    data = scenario_dict(duration_s=10 * 86_400)
    data["generators"] = [
        {"type": "medical", "rate_per_h": 1, "hourly_profile": profile, "points": [[24.94, 60.17]]}
    ]
    s = sc.parse(data)
    c = gen.generate(s, 0)
    local_hour = ((c.t_s / 3600 + 8.5) // 1 % 24).astype(int)
    assert set(local_hour) == {9, 21}
    assert abs(len(c) - s.expected_incidents()) < 4 * np.sqrt(s.expected_incidents())


def test_calls_fall_inside_their_polygon_and_at_their_points() -> None:
    s = sc.parse(scenario_dict(duration_s=5 * 86_400))
    c = gen.generate(s, 1)
    box = shapely.geometry.shape(BOX)
    medical = np.array([t == "medical" for t in c.type])
    assert shapely.contains_xy(box, c.lon[medical], c.lat[medical]).all()
    assert set(zip(c.lon[~medical], c.lat[~medical], strict=True)) == {CENTRE}
    assert set(c.severity[k] for k in np.flatnonzero(~medical)) == {"severe"}


def test_weighted_polygons_share_the_calls_by_weight() -> None:
    west = {
        "type": "Polygon",
        "coordinates": [
            [[24.90, 60.16], [24.93, 60.16], [24.93, 60.19], [24.90, 60.19], [24.90, 60.16]]
        ],
    }
    east = {
        "type": "Polygon",
        "coordinates": [
            [[24.95, 60.16], [24.98, 60.16], [24.98, 60.19], [24.95, 60.19], [24.95, 60.16]]
        ],
    }
    data = scenario_dict(duration_s=20 * 86_400)
    data["generators"] = [
        {
            "type": "medical",
            "rate_per_h": 5,
            "polygons": [{"polygon": west, "weight": 3}, {"polygon": east, "weight": 1}],
        }
    ]
    c = gen.generate(sc.parse(data), 0)
    west_share = float((c.lon < 24.94).mean())
    assert west_share == pytest.approx(0.75, abs=0.03)


def test_the_same_seed_gives_the_same_stream_and_replications_differ() -> None:
    s = sc.parse(scenario_dict())
    a, b, other = gen.generate(s, 0), gen.generate(s, 0), gen.generate(s, 1)
    assert np.array_equal(a.t_s, b.t_s) and np.array_equal(a.on_scene_s, b.on_scene_s)
    assert a.type == b.type
    assert not (len(a) == len(other) and np.array_equal(a.t_s, other.t_s))


def test_service_draws_follow_their_distributions() -> None:
    data = scenario_dict(duration_s=60 * 86_400)
    data["service"] = {
        "on_scene_s": {"dist": "lognormal", "mean": 1500, "sd": 600},
        "turnout_s": {"dist": "uniform", "low": 30, "high": 90},
        "dispatch_delay_s": {"dist": "fixed", "value": 45},
        "transport_probability": 0.4,
    }
    c = gen.generate(sc.parse(data), 0)
    assert c.on_scene_s.mean() == pytest.approx(1500, rel=0.03)
    assert c.on_scene_s.std() == pytest.approx(600, rel=0.08)
    assert c.turnout_s.min() >= 30 and c.turnout_s.max() <= 90
    assert set(c.dispatch_delay_s) == {45.0}
    assert c.transport.mean() == pytest.approx(0.4, abs=0.03)


def test_historical_incidents_are_read_from_csv(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text(
        "time,lon,lat,type,severity\n"
        "2026-07-01T09:30:00+03:00,24.94,60.17,fire,severe\n"
        "120,24.95,60.18,,\n"
        "2026-06-30T09:30:00+03:00,24.94,60.17,fire,severe\n"  # before the start: left out
    )
    data = scenario_dict(
        generators=[{"type": "medical", "severity": "minor", "csv": str(tmp_path / "h.csv")}]
    )
    c = gen.generate(sc.parse(data), 0)
    assert c.t_s.tolist() == [120.0, 3600.0]
    assert c.type == ("medical", "fire")
    assert c.severity == ("minor", "severe")


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ("time,lon,lat\n10,200,60\n", "line 2: lon/lat out of range"),
        ("time,lon,lat\n2026-07-01T09:30:00,24,60\n", "line 2: a time needs a UTC offset"),
        ("time,lon,lat,severity\n10,24,60,awful\n", "unknown severity"),
        ("when,lon,lat\n10,24,60\n", "missing columns ['time']"),
    ],
)
def test_a_bad_csv_row_is_named(tmp_path: Path, rows: str, says: str) -> None:
    (tmp_path / "h.csv").write_text(rows)
    data = scenario_dict(generators=[{"type": "medical", "csv": str(tmp_path / "h.csv")}])
    with pytest.raises(sc.ScenarioError, match=r"generators\.0\.csv") as caught:
        gen.generate(sc.parse(data), 0)
    assert says in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    duration_s=st.floats(1, 5 * 86_400),
)
def test_hour_segments_tile_the_run(minute: int, hour: int, duration_s: float) -> None:
    start = datetime.fromisoformat(f"2026-07-01T{hour:02d}:{minute:02d}:00+08:00")
    segments = gen._segments(start, duration_s)
    assert segments[0][0] == 0 and segments[-1][1] == duration_s
    assert all(a[1] == b[0] for a, b in itertools.pairwise(segments))
    assert segments[0][2] == hour
    assert all(b[2] == (a[2] + 1) % 24 for a, b in itertools.pairwise(segments))
    assert all(s[1] - s[0] <= 3600 + 1e-9 for s in segments)
