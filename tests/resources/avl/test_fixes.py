"""The checks on a fix that need no database: ranges, the time window, OsmAnd's
parameters, and the impossible-jump rule (against a brute-force reading of it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gis.places import haversine_m
from resources.avl.fixes import (
    JUMP_SLACK_M,
    KNOT_MPS,
    BadFix,
    Fix,
    Last,
    first_of_each,
    judge,
    make_fix,
    window,
)
from resources.avl.router import osmand_fix, osmand_json, osmand_time

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
TIMES = window(7 * 86400, 300, 90)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((200.0, 60.0), "lon"),
        ((24.0, -90.5), "lat"),
        ((float("nan"), 60.0), "finite"),
        ((0.0, 0.0), "0, 0"),
    ],
)
def test_out_of_range_coordinates_are_refused(args: tuple[float, float], message: str):
    with pytest.raises(BadFix, match=message):
        make_fix(1, *args, NOW, times=TIMES, now=NOW)


def test_the_time_window_is_the_shorter_of_max_age_and_retention():
    short = window(7 * 86400, 300, 2)  # the track keeps 2 days
    assert short.max_age_s == 2 * 86400
    make_fix(1, 24.9, 60.1, NOW - timedelta(days=1, hours=23), times=short, now=NOW)
    with pytest.raises(BadFix, match="in the past"):
        make_fix(1, 24.9, 60.1, NOW - timedelta(days=2, seconds=1), times=short, now=NOW)
    make_fix(1, 24.9, 60.1, NOW + timedelta(seconds=299), times=short, now=NOW)
    with pytest.raises(BadFix, match="in the future"):
        make_fix(1, 24.9, 60.1, NOW + timedelta(seconds=301), times=short, now=NOW)
    with pytest.raises(BadFix, match="offset"):
        make_fix(1, 24.9, 60.1, NOW.replace(tzinfo=None), times=short, now=NOW)


def test_gcj02_is_converted_and_heading_360_wraps():
    fix = make_fix(1, 116.397, 39.909, NOW, times=TIMES, crs="gcj02", heading_deg=360.0, now=NOW)
    assert 300 < haversine_m(fix.lon, fix.lat, 116.397, 39.909) < 700
    assert fix.heading_deg == 0.0


def test_osmand_parameters():
    assert osmand_time("1796544000", NOW) == datetime.fromtimestamp(1796544000, UTC)
    assert osmand_time("1796544000123", NOW) == datetime.fromtimestamp(1796544000.123, UTC)
    assert osmand_time("2026-12-06 07:59:00", NOW) == datetime(2026, 12, 6, 7, 59, tzinfo=UTC)
    assert osmand_time("2026-12-06T15:59:00+08:00", NOW) == datetime(2026, 12, 6, 7, 59, tzinfo=UTC)
    assert osmand_time(None, NOW) == NOW
    device, fix = osmand_fix(
        {
            "id": "abc",
            "location": "60.17,24.94",
            "speed": "10",
            "timestamp": "2026-12-06T07:59:00Z",
        },
        TIMES,
        NOW,
    )
    assert device == "abc"
    assert (fix.lon, fix.lat, fix.speed_mps) == (24.94, 60.17, pytest.approx(10 * KNOT_MPS))
    params = osmand_json(
        {
            "device_id": "abc",
            "location": {
                "timestamp": "2026-12-06T07:59:00.000Z",
                "coords": {"latitude": 60.17, "longitude": 24.94, "speed": -1, "heading": -1},
                "battery": {"level": 0.25},
            },
        }
    )
    assert params == {
        "id": "abc",
        "lat": "60.17",
        "lon": "24.94",
        "timestamp": "2026-12-06T07:59:00.000Z",
        "batt": "25.0",
    }


def _fix(unit: int, x_m: float, t_s: float) -> Fix:
    # Positions along a parallel near Helsinki, x metres east of 24.9 E.
    return Fix(unit_id=unit, lon=24.9 + x_m / 55_660.0, lat=60.17, recorded_at=at(t_s))


def test_a_jump_is_judged_from_the_last_good_fix():
    fixes = [_fix(1, 0, 0), _fix(1, 5_000, 10), _fix(1, 600, 20), _fix(1, 300, 5)]
    got = judge(fixes, {}, max_speed_mps=70)
    # 5 km in 10 s is 500 m/s; 600 m in 20 s is 30 m/s; the late one (t=5) is plausible
    # against the first but is older than the last good fix: kept, not the newest.
    assert got.flags == [None, "jump", None, None]
    assert got.newest == {1: 2}


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(-3000, 3000), st.floats(1, 120)), min_size=1, max_size=12),
    order=st.randoms(use_true_random=False),
    speed=st.sampled_from([10.0, 40.0, 70.0]),
)
def test_judge_matches_a_brute_force_reading(steps, order, speed):
    """The rule, read naively: walk the fixes in time order keeping the last good one; a
    fix is a jump if it is farther from that than speed x gap (>= 1 s) + slack. Any
    arrival order within one group gives the same flags, and the newest good fix wins."""
    t, x = 0.0, 0.0
    fixes = []
    for dx, dt in steps:
        t += dt
        x += dx
        fixes.append(_fix(7, x, t))
    expected = []
    last = None
    for fix in fixes:
        if last is not None:
            gap = max(abs((fix.recorded_at - last.recorded_at).total_seconds()), 1.0)
            far = haversine_m(last.lon, last.lat, fix.lon, fix.lat)
            if far > speed * gap + JUMP_SLACK_M:
                expected.append("jump")
                continue
        expected.append(None)
        last = fix
    shuffled = list(range(len(fixes)))
    order.shuffle(shuffled)
    got = judge([fixes[i] for i in shuffled], {}, max_speed_mps=speed)
    flags = {shuffled[k]: flag for k, flag in enumerate(got.flags)}
    assert [flags[i] for i in range(len(fixes))] == expected
    newest_good = max(i for i, f in enumerate(expected) if f is None)
    assert shuffled[got.newest[7]] == newest_good


def test_the_last_known_position_counts():
    last = {1: Last(24.9, 60.17, at(-60))}
    got = judge([_fix(1, 10_000, 0)], last, max_speed_mps=70)  # 10 km in 60 s
    assert got.flags == ["jump"] and got.newest == {}


def test_first_of_each_keeps_the_first_of_a_unit_and_time():
    fixes = [_fix(1, 0, 0), _fix(2, 0, 0), _fix(1, 5, 0), _fix(1, 0, 1)]
    assert first_of_each(fixes) == ([0, 1, 3], [2])


def test_the_rule_heals_itself_as_the_last_good_fix_ages():
    """A wrong last fix does not freeze a unit: the allowance grows with the time since it,
    so a true fix 10 km away is taken once 10 km is within reach (~143 s at 70 m/s)."""
    for age_s, flag in ((100, "jump"), (150, None)):
        last = {1: Last(24.9, 60.17, at(-age_s))}
        got = judge([_fix(1, 10_000, 0)], last, max_speed_mps=70)
        assert got.flags == [flag], age_s
