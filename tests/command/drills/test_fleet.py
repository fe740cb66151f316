"""command.drills.fleet: today's fleet from the database (real PostGIS, rolled back), an
inline fleet without one, and CAP alert files turned into injects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from command.drills import fleet
from command.response_plans.models import ResponsePlan
from dispatch.assign import Need
from drills import scenario as sc
from drills.world import Place
from resources.models import Station, Unit
from tests.support.cap import CENTRE, alert_xml, square

BASE: dict[str, Any] = {
    "name": "fleet",
    "start": "2026-07-01T08:00:00+03:00",
    "duration_s": 3600,
    "injects": [{"at_s": 0, "lon": 24.94, "lat": 60.17, "type": "medical"}],
}
INLINE = {
    **BASE,
    "stations": [
        {"name": "S1", "lon": 24.94, "lat": 60.17},
        {"name": "S2", "lon": 24.95, "lat": 60.165},
    ],
    "units": [
        {"callsign": "A1", "type": "ambulance", "capabilities": ["medical_bls"], "station": "S2"}
    ],
    "response_plans": {"medical": {"moderate": [{"capability": "medical_bls", "count": 1}]}},
}


def scenario(**fields: Any) -> sc.Scenario:
    return sc.parse({**BASE, **fields})


def station(session: Session, name: str, lon: float, lat: float, kind: str = "fire") -> Station:
    row = Station(name=name, kind=kind, geom=from_shape(Point(lon, lat), 4326))
    session.add(row)
    session.flush()
    return row


def unit(
    session: Session,
    callsign: str,
    home: Station | None,
    *,
    at: tuple[float, float] | None = None,
    drill_id: int | None = None,
    caps: tuple[str, ...] = ("medical_bls",),
) -> Unit:
    row = Unit(
        callsign=callsign,
        name=callsign,
        kind="vehicle",
        type="ambulance",
        capabilities=list(caps),
        home_station_id=home.id if home else None,
        drill_id=drill_id,
        geom=from_shape(Point(*at), 4326) if at else None,
    )
    session.add(row)
    session.flush()
    return row


# --- no database ---------------------------------------------------------------------------


def test_an_inline_scenario_needs_no_database():
    spec = sc.parse(INLINE)
    assert not fleet.needs_database(spec)
    got, notes = fleet.resolve(spec, None)
    assert notes == []
    assert got.stations == (Place("S1", 24.94, 60.17), Place("S2", 24.95, 60.165))
    assert [(u.callsign, u.station, u.capabilities) for u in got.units] == [
        ("A1", 1, frozenset({"medical_bls"}))
    ]
    assert got.plan_for("medical", "moderate") == (Need("medical_bls", 1),)


@pytest.mark.parametrize("part", ["stations", "units", "response_plans"])
def test_from_db_anywhere_needs_the_database(part: str):
    data = dict(INLINE)
    data[part] = "from_db"
    if part == "stations":
        data["units"] = "from_db"  # inline units need inline stations
    spec = sc.parse(data)
    assert fleet.needs_database(spec)
    with pytest.raises(sc.ScenarioError, match="needs the database"):
        fleet.resolve(spec, None)


def test_nearest_is_great_circle_with_ties_to_the_first():
    places = [Place("a", 24.0, 60.0), Place("b", 25.0, 60.0), Place("c", 24.0, 60.0)]
    assert fleet.nearest(places, 24.9, 60.0) == 1
    assert fleet.nearest(places, 24.1, 60.0) == 0


# --- today's fleet -------------------------------------------------------------------------


def test_from_db_reads_real_units_stations_hospitals_and_says_what_it_moved(session: Session):
    s1 = station(session, "North", 24.94, 60.17)
    s2 = station(session, "South", 24.95, 60.16)
    h1 = station(session, "General hospital", 24.93, 60.18, kind="hospital")
    h2 = station(session, "Hospital post", 24.96, 60.17, kind="hospital")
    unit(session, "A1", s1)
    unit(session, "A2", None, at=(24.951, 60.161))  # no home: nearest station (South)
    unit(session, "A3", None)  # no home, no position: left out
    unit(session, "A4", h2)  # homed at a hospital: that hospital is a post too
    unit(session, "X1", s1, drill_id=12345)  # a tabletop stand-in: never in a fleet
    got, notes = fleet.resolve(scenario(), session)
    names = [s.name for s in got.stations]
    assert names == [
        "North",
        "South",
        "Hospital post",
    ]  # id order; the other hospital is not a post
    assert [(u.callsign, names[u.station]) for u in got.units] == [
        ("A1", "North"),
        ("A2", "South"),
        ("A4", "Hospital post"),
    ]
    assert [h.name for h in got.hospitals] == ["General hospital", "Hospital post"]
    assert got.hospitals[0] == Place("General hospital", 24.93, 60.18)
    assert notes == [
        "unit A2: no home station; placed at the nearest, South",
        "unit A3: no home station and no position; left out",
    ]
    del s2, h1


def test_inline_hospitals_replace_the_database_ones(session: Session):
    home = station(session, "North", 24.94, 60.17)
    station(session, "General hospital", 24.93, 60.18, kind="hospital")
    unit(session, "A1", home)
    got, _ = fleet.resolve(
        scenario(hospitals=[{"name": "Field hospital", "lon": 24.95, "lat": 60.17}]), session
    )
    assert got.hospitals == (Place("Field hospital", 24.95, 60.17),)


def test_inline_stations_take_db_units_by_name_or_nearest(session: Session):
    north = station(session, "North", 24.94, 60.17)
    east = station(session, "East", 24.96, 60.17)
    unit(session, "A1", north)
    unit(session, "A2", east)
    spec = scenario(
        stations=[{"name": "North", "lon": 24.941, "lat": 60.171},
                  {"name": "New east", "lon": 24.959, "lat": 60.169}],
        units="from_db",
    )  # fmt: skip
    got, notes = fleet.resolve(spec, session)
    assert [s.name for s in got.stations] == ["North", "New east"]
    assert [(u.callsign, u.station) for u in got.units] == [("A1", 0), ("A2", 1)]
    assert notes == ["unit A2: placed at the nearest listed station, New east"]
    assert got.hospitals == ()  # inline stations: hospitals only when the scenario lists them


def test_plans_follow_the_live_fallback_for_every_severity(session: Session):
    session.query(ResponsePlan).delete()
    session.add(
        ResponsePlan(incident_type="fire", severity="moderate",
                     needs=[{"capability": "fire_suppression", "count": 2}])
    )  # fmt: skip
    session.add(
        ResponsePlan(incident_type="fire", severity="extreme",
                     needs=[{"capability": "fire_suppression", "count": 4},
                            {"capability": "ladder", "count": 1}])
    )  # fmt: skip
    home = station(session, "North", 24.94, 60.17)
    unit(session, "E1", home, caps=("fire_suppression",))
    got, _ = fleet.resolve(scenario(), session)
    two = (Need("fire_suppression", 2),)
    assert got.plan_for("fire", "minor") == two  # none lower: the nearest higher
    assert got.plan_for("fire", "moderate") == two
    assert got.plan_for("fire", "severe") == two  # the nearest lower
    assert got.plan_for("fire", "extreme") == (Need("fire_suppression", 4), Need("ladder", 1))
    assert got.plan_for("medical", "severe") == ()  # no plan: one fastest unit


def test_inline_plans_are_kept_with_a_db_fleet(session: Session):
    unit(session, "A1", station(session, "North", 24.94, 60.17))
    plans = {"medical": {"severe": [{"capability": "medical_als", "count": 2}]}}
    got, _ = fleet.resolve(scenario(response_plans=plans), session)
    assert got.plan_for("medical", "severe") == (Need("medical_als", 2),)
    assert got.plan_for("fire", "severe") == ()


def test_an_empty_database_is_a_scenario_error_naming_both(session: Session):
    session.query(Unit).delete()
    session.query(Station).delete()
    with pytest.raises(sc.ScenarioError) as caught:
        fleet.resolve(scenario(), session)
    assert [where for where, _ in caught.value.problems] == ["stations", "units"]


# --- CAP alert files -------------------------------------------------------------------------


def alerts(tmp_path: Path, files: dict[str, str | bytes]) -> list[sc.AlertInject]:
    out = []
    for i, (name, body) in enumerate(files.items()):
        path = tmp_path / name
        path.write_bytes(body.encode() if isinstance(body, str) else body)
        out.append(sc.AlertInject(at_s=60.0 * (i + 1), file=str(path)))
    return out


def test_each_area_of_an_alert_becomes_an_inject_at_its_centroid(tmp_path: Path):
    lon, lat = CENTRE
    xml = alert_xml("DRILL-1", areas=[square(lon, lat), square(lon + 0.01, lat, half=0.001)])
    storm = alert_xml("DRILL-2", event="Thunderstorm", severity="Moderate", urgency="Expected")
    got = fleet.alert_injects(alerts(tmp_path, {"flood.xml": xml, "storm.cap": storm}))
    assert [(i.at_s, i.type, i.severity) for i in got] == [
        (60.0, "flood", "extreme"),  # Severe, Immediate and Observed: one level up
        (60.0, "flood", "extreme"),
        (120.0, "storm", "moderate"),
    ]
    assert (got[0].lon, got[0].lat) == pytest.approx((lon, lat), abs=1e-6)
    assert (got[1].lon, got[1].lat) == pytest.approx((lon + 0.01, lat), abs=1e-6)
    assert got[0].title == "Flash Flood 预警"


def test_bad_alert_files_are_named_each(tmp_path: Path):
    no_area = alert_xml("DRILL-3", areas=[])
    cancel = alert_xml("DRILL-4", msg_type="Cancel", references="a,b,2026-01-01T00:00:00+00:00")
    items = alerts(
        tmp_path,
        {"junk.xml": "not xml at all", "empty.xml": no_area, "cancel.xml": cancel},
    )
    items.append(sc.AlertInject(at_s=0, file=str(tmp_path / "missing.xml")))
    with pytest.raises(sc.ScenarioError) as caught:
        fleet.alert_injects(items)
    problems = caught.value.problems
    assert [where for where, _ in problems] == [f"alerts.{i}.file" for i in range(4)]
    assert problems[0][1].startswith("junk.xml: CAP refused:")
    assert problems[1][1] == "empty.xml: no area with a polygon or circle to place an incident in"
    assert problems[2][1].startswith("cancel.xml: msgType Cancel")
    assert problems[3][1].startswith("cannot read missing.xml")
    assert str(tmp_path) not in str(caught.value)  # names, never the server's folders
