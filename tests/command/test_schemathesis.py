"""Schemathesis against a live server on a real PostGIS, as dispatcher, responder and
auditor: no server error, and every response as the OpenAPI document says (status code
listed, content type, body schema, headers); 405s name their methods.

One run per role of the standard `schemathesis run` (examples, coverage and fuzzing
phases, positive and negative data), deterministic (fixed seed, derandomized) and bounded
by examples per operation. The server is the app as `emergency serve` runs it
(command/server.py's deadlines included), on a database of its own with a small city in
it whose ids (1, 2, ...) the generated ids often hit.

POST /api/alerts is kept: a person's token is refused there (403, documented), and a
generated X-Api-Key signature is refused as 401; the signed path itself is tested in
tests/command/intake/test_alerts_api.py, since valid HMACs cannot be generated from the schema.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine

from command.app import create_app
from command.auth import service as auth
from command.auth.models import User
from command.migrate import upgrade
from command.server import uvicorn_options
from core.config import Settings
from core.db import AuditedSession, sqlalchemy_url
from gis.engine import Engine
from tests.support.db import create_database, drop_database
from tests.support.servers import serve_port
from tests.support.world import TEST_SECRET, point

pytestmark = pytest.mark.slow

ROLES = ("dispatcher", "responder", "auditor")
SEED = 20261122
# Phases per role. The coverage phase (boundary values, wrong types, missing fields, every
# method a path does not take) is ~5,000 requests and most of the time: it runs as the
# dispatcher, who may write almost everything, so each request reaches the deepest code.
# The other roles are fuzzed (mostly to the role check and what it answers).
PHASES = {
    "dispatcher": "examples,coverage,fuzzing",
    "responder": "examples,fuzzing",
    "auditor": "examples,fuzzing",
}
# Fuzzed examples per operation and role.
MAX_EXAMPLES = int(os.environ.get("EMERGENCY_SCHEMATHESIS_EXAMPLES", "6"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "unsupported_method",
)


@dataclass
class Live:
    base: str
    headers: dict[str, dict[str, str]]


def _seed_users(url: str, roles: tuple[str, ...], unit_id: int) -> dict[str, dict[str, str]]:
    engine = create_engine(sqlalchemy_url(url))
    headers = {}
    try:
        with AuditedSession(engine) as session:
            password_hash = auth.hash_password("schemathesis-password")
            for role in roles:
                user = User(
                    username=role,
                    password_hash=password_hash,
                    role=role,
                    unit_id=unit_id if role == "responder" else None,
                )
                session.add(user)
                session.flush()
                token = auth.issue_token(user, secret=TEST_SECRET, ttl_s=3600)
                headers[role] = {"Authorization": f"Bearer {token}"}
            session.commit()
    finally:
        engine.dispose()
    return headers


def _seed_city(base: str, admin: dict[str, str]) -> None:
    """A station, units, a shelter, a warehouse with stock, an incident with a task, a
    warning zone: the rows whose ids the generated requests name."""
    with httpx.Client(base_url=base, headers=admin, timeout=30) as http:

        def post(path: str, body: dict[str, Any]) -> Any:
            response = http.post(path, json=body)
            assert response.status_code in (200, 201), (path, response.text)
            return response.json()

        def feature(geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
            return {"type": "Feature", "geometry": geometry, "properties": props}

        station = post("/api/stations", feature(point(24.94, 60.17), name="Central", kind="fire"))
        for callsign, unit_type, caps in (
            ("E1", "fire_engine", ["fire_suppression"]),
            ("A1", "ambulance", ["medical_bls"]),
            ("A2", "ambulance", ["medical_bls"]),
        ):
            post(
                "/api/units",
                feature(
                    point(24.941, 60.171),
                    callsign=callsign,
                    name=f"Unit {callsign}",
                    kind="vehicle",
                    type=unit_type,
                    capabilities=caps,
                    home_station_id=station["id"],
                ),
            )
        post("/api/shelters", feature(point(24.93, 60.18), name="School", capacity=300))
        warehouse = post("/api/warehouses", feature(point(24.96, 60.19), name="Depot"))
        post("/api/stock", {"warehouse_id": warehouse["id"], "item": "water_l", "quantity": 500})
        incident = post(
            "/api/incidents",
            feature(point(24.95, 60.17), title="Kitchen fire", type="fire", severity="severe"),
        )
        post(f"/api/incidents/{incident['id']}/dispatch", {"unit_ids": [1]})
        square = [[24.90, 60.15], [24.92, 60.15], [24.92, 60.16], [24.90, 60.16], [24.90, 60.15]]
        post(
            "/api/warning-zones",
            feature({"type": "Polygon", "coordinates": [square]}, name="Flood", kind="flood"),
        )


@pytest.fixture(scope="module")
def live(road_engine: Engine, database_url: str) -> Iterator[Live]:
    del database_url  # skip or fail like the other database tests
    url = create_database("emergency_schemathesis")
    try:
        upgrade(url)
        settings = Settings(env="test", database_url=url, secret_key=TEST_SECRET, realtime=False)
        headers = _seed_users(url, ("admin",), unit_id=0)
        app = create_app(settings, graph=road_engine)
        with serve_port(app, **uvicorn_options(settings)) as port:
            base = f"http://127.0.0.1:{port}"
            _seed_city(base, headers["admin"])  # unit 1 is E1
            headers |= _seed_users(url, ROLES, unit_id=1)
            yield Live(base, headers)
    finally:
        drop_database(url)


def run_schemathesis(live: Live, role: str, report: Path) -> tuple[int, str]:
    """One `schemathesis run` as ``role``; its exit code and output."""
    ((name, value),) = live.headers[role].items()
    options = {
        "--header": f"{name}: {value}",
        "--checks": os.environ.get("EMERGENCY_SCHEMATHESIS_CHECKS", ",".join(CHECKS)),
        "--phases": PHASES[role],
        "--mode": "all",
        "--max-examples": str(MAX_EXAMPLES),
        "--seed": str(SEED),
        "--workers": "1",
        "--request-timeout": "30",
        "--suppress-health-check": "all",
        "--report": "ndjson",
        "--report-ndjson-path": str(report),
    }
    flags = ("--generation-deterministic", "--continue-on-failure", "--no-color")
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{live.base}/openapi.json"]
    command += [*chain.from_iterable(options.items()), *flags]
    # In the report's folder: schemathesis keeps a cache (.schemathesis/) where it runs.
    done = subprocess.run(  # noqa: S603 - this interpreter, arguments of our own
        command, capture_output=True, text=True, timeout=600, check=False, cwd=report.parent
    )
    return done.returncode, done.stdout + done.stderr


def summarise(report: Path) -> dict[str, Any]:
    """Requests sent, by phase and by status, and failed checks, from the run's events."""
    by_phase: Counter[str] = Counter()
    by_status: Counter[int] = Counter()
    failures: list[str] = []
    for line in report.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if finished is None:
            continue
        recorder = finished["recorder"]
        interactions = recorder.get("interactions", {}).values()
        by_phase[str(finished["phase"])] += len(interactions)
        by_status.update(i["response"]["status_code"] for i in interactions if i.get("response"))
        for checks in recorder.get("checks", {}).values():
            failures += [
                f"{recorder['label']}: {c['name']}" for c in checks if c["status"] == "failure"
            ]
    return {
        "requests": sum(by_phase.values()),
        "by_phase": dict(by_phase),
        "by_status": dict(sorted(by_status.items())),
        "failures": failures,
    }


@pytest.mark.parametrize("role", ROLES)
def test_schemathesis(live: Live, role: str, tmp_path: Path) -> None:
    report = tmp_path / f"{role}.ndjson"
    started = time.monotonic()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time()
    code, output = run_schemathesis(live, role, report)
    # CPU seconds of the run (schemathesis) and of this process (the server): on a busy
    # machine the wall time says little about the run's own cost.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu_s = after.ru_utime + after.ru_stime - cpu[0].ru_utime - cpu[0].ru_stime
    server_cpu_s = time.process_time() - cpu[1]
    summary = summarise(report) if report.exists() else {}
    print(
        f"\n[schemathesis {role}] wall {time.monotonic() - started:.1f} s, cpu: schemathesis "
        f"{client_cpu_s:.1f} s, server {server_cpu_s:.1f} s; {summary}"
    )
    assert code == 0, output[-20000:]
