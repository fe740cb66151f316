"""`emergency drill run` in-process: an all-inline scenario with no database at all, CAP
alert files as injects, `network: loaded`, today's fleet from a committed database, and
every refusal as exit 2 with its problems listed."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from command.drills.cli import slug
from command.migrate import upgrade
from command.response_plans.models import ResponsePlan
from command.seed import city_extract
from core.config import get_settings
from core.db import sqlalchemy_url
from resources.models import Station, Unit
from tests.support.cap import CENTRE, alert_xml
from tests.support.cli import invoke
from tests.support.db import create_database, drop_database, unavailable

NOWHERE = "postgresql://nobody@127.0.0.1:9/none"  # no server listens on port 9
HELSINKI = city_extract("helsinki")
SCENARIO: dict[str, Any] = {
    "name": "CLI smoke",
    "network": str(HELSINKI),
    "start": "2026-07-01T08:00:00+03:00",
    "duration_s": 3 * 3600,
    "seed": 11,
    "policies": ["nearest", "move_up"],
    "targets": {"response_s": 480},
    "stations": [
        {"name": "Fire post 1", "lon": 24.9435452, "lat": 60.1722668},
        {"name": "Post 2", "lon": 24.9532279, "lat": 60.1645736},
    ],
    "units": [
        {
            "callsign": "A1",
            "type": "ambulance",
            "capabilities": ["medical_bls"],
            "station": "Fire post 1",
        },
        {
            "callsign": "A2",
            "type": "ambulance",
            "capabilities": ["medical_bls"],
            "station": "Post 2",
        },
    ],
    "response_plans": {},
    "generators": [
        {"type": "medical", "severity": "moderate", "rate_per_h": 2, "points": [[24.94, 60.17]]}
    ],
}


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("drill-graphs")  # parsed once for the module


def configure(monkeypatch: pytest.MonkeyPatch, graph_cache: Path, database_url: str) -> None:
    """The CLI's database, no server network configured, and the module's graph cache."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("EMERGENCY_DATABASE_URL", raising=False)
    monkeypatch.delenv("EMERGENCY_OSM_FILE", raising=False)
    monkeypatch.setenv("EMERGENCY_GRAPH_CACHE_DIR", str(graph_cache))
    monkeypatch.setenv("EMERGENCY_ENV", "test")
    get_settings.cache_clear()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, graph_cache: Path) -> Iterator[None]:
    """No database reachable (the CLI must not need one)."""
    configure(monkeypatch, graph_cache, NOWHERE)
    yield
    get_settings.cache_clear()


def write(folder: Path, data: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def ran(result: Any) -> None:
    assert result.exit_code == 0, result.output + str(result.exception)


def test_an_inline_scenario_runs_without_a_database(tmp_path: Path, env: None):
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "flood.xml").write_text(alert_xml("DRILL-CLI-1"), encoding="utf-8")
    data = {**SCENARIO, "alerts": [{"at_s": 1800, "file": "alerts/flood.xml"}]}  # relative
    out = tmp_path / "out"
    result = invoke("drill", "run", str(write(tmp_path, data)), "--out", str(out),
                    "--replications", "2")  # fmt: skip
    ran(result)
    assert sorted(p.name for p in out.iterdir()) == ["events.csv", "report.html", "report.json"]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["replications"] == 2
    assert report["fleet"] == {"stations": 2, "units": 2, "hospitals": 0}
    assert set(report["policies"]) == {"nearest", "move_up"}
    for entry in report["policies"].values():
        kpis = entry["kpis"]
        assert kpis["incidents"] >= 1
        assert 0 <= kpis["within_target"] <= 1
        assert 0 < kpis["utilisation"] <= 1
    assert str(tmp_path) not in (out / "report.json").read_text(encoding="utf-8")
    with (out / "events.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    floods = [r for r in rows if r["kind"] == "call" and r["type"] == "flood"]
    assert len(floods) == 2  # the alert's one area, once per policy (replication 0)
    assert {float(r["t_s"]) for r in floods} == {1800.0}
    assert float(floods[0]["lon"]) == pytest.approx(CENTRE[0], abs=1e-4)
    for policy in ("nearest", "move_up"):
        assert policy in result.stdout
    assert "within target" in result.stdout
    assert f"report: {out}" in result.stdout


def test_the_default_folder_is_named_after_the_scenario(tmp_path: Path, env: None, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = {**SCENARIO, "name": "Flood drill 洪水 #2", "policies": ["nearest"], "duration_s": 3600}
    ran(invoke("drill", "run", str(write(tmp_path, data))))
    assert (tmp_path / "drill-flood-drill-洪水-2" / "report.json").is_file()
    assert slug("  !!  ") == "scenario"


def test_network_loaded_is_the_network_the_server_routes_on(tmp_path, env, monkeypatch):
    monkeypatch.setenv("EMERGENCY_OSM_FILE", str(HELSINKI))
    get_settings.cache_clear()
    data = {**SCENARIO, "network": "loaded", "policies": ["nearest"], "duration_s": 3600}
    ran(invoke("drill", "run", str(write(tmp_path, data)), "--out", str(tmp_path / "o")))
    assert json.loads((tmp_path / "o" / "report.json").read_text())["spec"]["network"] == "loaded"


def test_network_loaded_without_a_database_is_the_demo_city(tmp_path, env):
    data = {**SCENARIO, "network": "loaded", "policies": ["nearest"], "duration_s": 3600}
    ran(invoke("drill", "run", str(write(tmp_path, data)), "--out", str(tmp_path / "o")))
    assert (tmp_path / "o" / "report.json").is_file()  # EMERGENCY_DEMO_CITY: helsinki


def test_a_broken_scenario_exits_2_listing_each_problem(tmp_path: Path, env: None):
    data = {**SCENARIO, "duration_s": 0, "policies": ["nearest", "fastest"]}
    data["generators"] = [{"type": "fire", "rate_per_h": -1, "points": [[24.94, 60.17]]}]
    out = tmp_path / "out"
    result = invoke("drill", "run", str(write(tmp_path, data)), "--out", str(out))
    assert result.exit_code == 2
    assert "cannot run" in result.output
    for where in ("duration_s:", "policies.1:", "generators.0.rate_per_h:"):
        assert where in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"network": "missing.osm.pbf"}, "network: no such OSM file: missing.osm.pbf"),
        ({"alerts": [{"at_s": 0, "file": "junk.xml"}]}, "alerts.0.file: junk.xml: CAP refused"),
        ({"stations": "from_db", "units": "from_db"},
         "the scenario reads from_db and the database is not reachable"),
    ],
)  # fmt: skip
def test_what_cannot_run_exits_2_saying_why(tmp_path: Path, env: None, change, expected):
    (tmp_path / "junk.xml").write_text("<not-cap/>", encoding="utf-8")
    result = invoke("drill", "run", str(write(tmp_path, {**SCENARIO, **change})))
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())


def test_an_unreadable_scenario_file_exits_2(tmp_path: Path, env: None):
    result = invoke("drill", "run", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "cannot read" in result.output


# --- today's fleet from a committed database ---------------------------------------------


@pytest.fixture
def fleet_db(
    database_url: str, graph_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A migrated database holding two stations, three units and a response plan, that the
    CLI reaches through DATABASE_URL."""
    del database_url  # asked for so a missing PostGIS skips (or fails in CI) the same way
    try:
        url = create_database("emergency_drill_cli")
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
        raise
    engine = create_engine(sqlalchemy_url(url))
    try:
        upgrade(url)
        with Session(engine) as s:
            posts = [Station(name=n, kind="ambulance", geom=from_shape(Point(lon, lat), 4326))
                     for n, lon, lat in (("North", 24.9435, 60.1723), ("South", 24.9532, 60.1646))]  # fmt: skip
            s.add_all(posts)
            s.flush()
            for i, callsign in enumerate(("A1", "A2", "A3")):
                s.add(Unit(callsign=callsign, name=callsign, kind="vehicle", type="ambulance",
                           capabilities=["medical_bls"], home_station_id=posts[i % 2].id))  # fmt: skip
            s.add(Unit(callsign="D1", name="stand-in", kind="vehicle", type="ambulance",
                       capabilities=["medical_bls"], home_station_id=posts[0].id, drill_id=99))  # fmt: skip
            s.add(ResponsePlan(incident_type="medical", severity="moderate",
                               needs=[{"capability": "medical_bls", "count": 1}]))  # fmt: skip
            s.commit()
        configure(monkeypatch, graph_cache, url)
        yield url
    finally:
        engine.dispose()
        get_settings.cache_clear()
        drop_database(url)


def test_from_db_reads_today_s_real_fleet(tmp_path: Path, fleet_db: str):
    data = {**SCENARIO, "stations": "from_db", "units": "from_db", "response_plans": "from_db",
            "policies": ["nearest"], "duration_s": 3600}  # fmt: skip
    out = tmp_path / "out"
    ran(invoke("drill", "run", str(write(tmp_path, data)), "--out", str(out)))
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["fleet"] == {"stations": 2, "units": 3, "hospitals": 0}  # D1 is a stand-in
