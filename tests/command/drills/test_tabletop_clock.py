"""The tabletop clock: injects made when the simulated clock (speed x real time) reaches
them, never before; the end of the duration finishes the drill; stop (over HTTP, from
another shell, Ctrl-C) ends it with its report. `emergency drill start --live` runs the
clock in the foreground of a real process on a committed database."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from command.drills import tabletop
from command.drills.models import Drill
from command.incidents.models import Incident
from core.db import sqlalchemy_url
from drills import calls
from drills import scenario as sc
from resources.models import Station, Unit
from tests.support.cli import cli_database, invoke
from tests.support.world import World

SPEED = 3600.0  # a simulated hour per real second
SCENARIO: dict[str, Any] = {
    "name": "clock test",
    "start": "2026-07-01T08:00:00+03:00",
    "duration_s": 7200,
    "seed": 11,
    "generators": [{"type": "medical", "severity": "moderate", "rate_per_h": 3,
                    "points": [[24.9400, 60.1680], [24.9520, 60.1770]]}],
    "injects": [
        {"at_s": 0, "lon": 24.945, "lat": 60.1712, "type": "fire", "title": "first"},
        {"at_s": 1800, "lon": 24.945, "lat": 60.1712, "type": "fire", "title": "half hour"},
        {"at_s": 5400, "lon": 24.945, "lat": 60.1712, "type": "rescue", "title": "90 min"},
    ],
}  # fmt: skip


def test_the_clock_injects_at_the_right_simulated_times(
    session: Session, session_factory: sessionmaker[Session], world: World
):
    spec = sc.parse(SCENARIO)
    drill = tabletop.start(session, spec, speed=SPEED, principal=tabletop.RUNNER)
    session.commit()
    heard: list[dict[str, Any]] = []
    status = tabletop.run_clock(session_factory, drill.id, on_inject=heard.append, tick_s=0.05)
    assert status == "finished"
    stream = calls.generate(spec, 0)
    assert [i["at_s"] for i in heard] == pytest.approx(list(stream.t_s), abs=1e-3)
    assert [i["type"] for i in heard] == list(stream.type)
    assert [i["title"] for i in heard if i["title"]] == ["first", "half hour", "90 min"]
    session.refresh(drill)
    made = {i.id: i for i in session.scalars(select(Incident).where(Incident.drill_id == drill.id))}
    assert sorted(made) == sorted(i["incident_id"] for i in heard)
    for item in heard:
        incident = made[item["incident_id"]]
        wall = (incident.reported_at - drill.started_at).total_seconds()
        due = item["at_s"] / SPEED
        assert due <= wall < due + 0.5, (item, wall)  # never early, at most one tick late
        assert incident.drill and incident.type == item["type"]
    assert drill.status == "finished" and drill.progress == 1.0
    assert drill.report["injects"]["done"] == len(heard)
    assert drill.report["clock_s"] == 7200


def test_stop_over_http_ends_the_running_clock(
    client: TestClient, session: Session, session_factory: sessionmaker[Session], world: World
):
    drill = tabletop.start(session, sc.parse(SCENARIO), speed=60, principal=tabletop.RUNNER)
    session.commit()
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # the planner stops it from another screen
        naps.append(seconds)
        if len(naps) == 2:
            r = client.post(f"/api/drills/{drill.id}/stop", headers=world.h("planner"))
            assert r.status_code == 200, r.text

    assert tabletop.run_clock(session_factory, drill.id, on_inject=print, sleep=sleep) == "stopped"
    assert len(naps) == 2 and all(0 < n <= 0.5 for n in naps)
    session.refresh(drill)
    assert drill.status == "stopped" and drill.finished_at is not None
    assert drill.report["status"] == "stopped" and drill.report["injects"]["pending"] > 0
    frozen = client.get(f"/api/drills/{drill.id}/tabletop", headers=world.h("dispatcher")).json()
    time.sleep(0.05)
    again = client.get(f"/api/drills/{drill.id}/tabletop", headers=world.h("dispatcher")).json()
    assert frozen["drill"]["clock_s"] == again["drill"]["clock_s"] < 7200


def test_ctrl_c_stops_the_drill(
    session: Session, session_factory: sessionmaker[Session], world: World
):
    drill = tabletop.start(session, sc.parse(SCENARIO), speed=60, principal=tabletop.RUNNER)
    session.commit()

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    assert tabletop.run_clock(session_factory, drill.id, on_inject=print, sleep=interrupted) == (
        "stopped"
    )
    session.refresh(drill)
    assert drill.status == "stopped" and drill.report is not None


def test_a_server_started_tabletop(
    client: TestClient, session: Session, world: World, monkeypatch: pytest.MonkeyPatch
):
    started: list[int] = []
    monkeypatch.setattr(
        "command.drills.tabletop_router.Clocks.start",
        lambda self, s, drill_id: started.append(drill_id),
    )  # the clock thread itself is what `run_clock` does (tested above)
    r = client.post("/api/drills/tabletop?speed=120", json=SCENARIO, headers=world.h("planner"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert started == [body["drill"]["id"]]
    assert body["drill"]["mode"] == "tabletop" and body["drill"]["speed"] == 120
    assert body["injects"]["done"] == 0 and body["injects"]["total"] >= 3
    units = client.get(f"/api/units?drill={started[0]}", headers=world.h("dispatcher")).json()
    assert len(units["features"]) == 2
    r = client.post("/api/drills/tabletop", json=SCENARIO, headers=world.h("dispatcher"))
    assert r.status_code == 403


# --- the CLI, in a real process on a committed database ----------------------------------
@pytest.fixture
def cli_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new migrated database with a station and two units, reached through DATABASE_URL."""
    with cli_database(monkeypatch, "emergency_tabletop", seed=_station_and_two_units) as url:
        yield url


def _station_and_two_units(url: str) -> None:
    engine = create_engine(sqlalchemy_url(url))
    with Session(engine) as s:
        station = Station(name="S1", kind="fire", geom=from_shape(Point(24.94, 60.17), 4326))
        s.add(station)
        s.flush()
        for callsign in ("E1", "A1"):
            s.add(Unit(callsign=callsign, name=callsign, kind="vehicle", type="ambulance",
                       capabilities=["medical_bls"], crew=2, home_station_id=station.id))  # fmt: skip
        s.commit()
    engine.dispose()


@pytest.fixture
def db(cli_db: str) -> Iterator[Engine]:
    engine = create_engine(sqlalchemy_url(cli_db))
    yield engine
    engine.dispose()


class Started:
    """``emergency drill start --live`` in its own process, its stdout read line by line."""

    def __init__(self, scenario: Path, speed: float) -> None:
        code = "from command.cli import main; main()"
        self.stderr = scenario.with_suffix(f".{time.monotonic_ns()}.err")
        with self.stderr.open("w") as err:
            self.proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own arguments
                [sys.executable, "-c", code, "drill", "start", str(scenario), "--live",
                 "--speed", str(speed)],
                stdout=subprocess.PIPE, stderr=err, text=True, env=dict(os.environ),
            )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.rstrip("\n"))

    def line(self, timeout_s: float = 30.0) -> str:
        try:
            return self.lines.get(timeout=timeout_s)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no output; stderr: {self.stderr.read_text()}") from None

    def finish(self, timeout_s: float = 30.0) -> list[str]:
        try:
            self.proc.wait(timeout_s)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(5)
        out = []
        while not self.lines.empty():
            out.append(self.lines.get())
        return out


def _scenario_file(tmp_path: Path, duration_s: float) -> Path:
    path = tmp_path / "tabletop.yaml"
    path.write_text(yaml.safe_dump({**SCENARIO, "generators": [], "duration_s": duration_s}))
    return path


def test_cli_start_runs_to_the_end(db: Engine, tmp_path: Path):
    run = Started(_scenario_file(tmp_path, 7200), SPEED)
    first = json.loads(run.line())
    assert first["total"] == 3 and first["console"] == f"/screen?drill={first['drill_id']}"
    rest = run.finish()
    assert run.proc.returncode == 0
    assert [line.split()[0] for line in rest[:3]] == ["T+00:00:00", "T+00:30:00", "T+01:30:00"]
    assert "inject 3/3" in rest[2] and "90 min" in rest[2]
    assert json.loads(rest[-1]) == {"drill_id": first["drill_id"], "status": "finished"}
    with Session(db) as s:
        drill = s.get_one(Drill, first["drill_id"])
        assert drill.status == "finished" and drill.report["injects"]["done"] == 3
        twins = s.scalars(select(Unit.callsign).where(Unit.drill_id == drill.id)).all()
        assert sorted(twins) == [f"D{drill.id}-A1", f"D{drill.id}-E1"]


def test_cli_stop_from_another_shell_and_ctrl_c(db: Engine, tmp_path: Path):
    path = _scenario_file(tmp_path, 86_400)
    run = Started(path, 60)
    drill_id = json.loads(run.line())["drill_id"]
    assert run.line().startswith("T+00:00:00")
    stopped = invoke("drill", "stop", str(drill_id))
    assert stopped.exit_code == 0, stopped.output
    assert json.loads(stopped.stdout)["status"] == "stopped"
    rest = run.finish(10)
    assert run.proc.returncode == 0
    assert json.loads(rest[-1]) == {"drill_id": drill_id, "status": "stopped"}
    again = invoke("drill", "stop", str(drill_id))
    assert again.exit_code != 0  # not running any more
    run = Started(path, 60)
    other = json.loads(run.line())["drill_id"]
    run.line()
    run.proc.send_signal(signal.SIGINT)
    rest = run.finish(10)
    assert json.loads(rest[-1]) == {"drill_id": other, "status": "stopped"}
    with Session(db) as s:
        assert s.get_one(Drill, other).status == "stopped"
        assert s.get_one(Drill, other).report is not None
