"""The audit chain in a running server: changes sealed before the answer, checkpoints written
on a period and on the way out, verify over HTTP reading them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from command.app import create_app
from command.auth import service as auth
from command.auth.models import User
from command.migrate import upgrade
from core.config import Settings
from core.db import AuditedSession, sqlalchemy_url
from tests.support.db import create_database, drop_database
from tests.support.servers import serve_in_thread
from tests.support.world import TEST_SECRET


@pytest.fixture
def own_db(database_url: str) -> Iterator[tuple[str, Engine]]:
    del database_url  # skip or fail like the other database tests
    url = create_database("emergency_audit_server")
    engine = create_engine(sqlalchemy_url(url))
    try:
        upgrade(url)
        yield url, engine
    finally:
        engine.dispose()
        drop_database(url)


def _token(engine: Engine, role: str, password_hash: str) -> str:
    with AuditedSession(engine, expire_on_commit=False) as s:
        user = User(username=role, password_hash=password_hash, role=role)
        s.add(user)
        s.commit()
    return auth.issue_token(user, secret=TEST_SECRET, ttl_s=600)


def _incident(n: int) -> dict:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [-0.0 if n == 0 else 24.94, 60.17]},
        "properties": {"title": f"fire {n}", "type": "fire"},
    }


def test_a_server_seals_before_answering_and_writes_checkpoints(
    own_db, road_engine, password_hash, tmp_path: Path
):
    url, engine = own_db
    folder = tmp_path / "checkpoints"
    settings = Settings(
        env="test",
        database_url=url,
        secret_key=TEST_SECRET,
        realtime=False,
        audit_checkpoint_dir=folder,
        audit_checkpoint_s=1.0,
    )
    dispatcher = {"Authorization": "Bearer " + _token(engine, "dispatcher", password_hash)}
    auditor = {"Authorization": "Bearer " + _token(engine, "auditor", password_hash)}
    with serve_in_thread(create_app(settings, graph=road_engine)) as base:
        for n in range(3):
            created = httpx.post(f"{base}/api/incidents", json=_incident(n), headers=dispatcher)
            assert created.status_code == 201, created.text
            with engine.connect() as conn:  # sealed when the answer came: row and event
                staged = conn.scalar(text("SELECT count(*) FROM pending_change"))
                audited = conn.scalar(
                    text(
                        "SELECT count(*) FROM audit_event WHERE entity = 'incident' AND entity_id = :i"
                    ),
                    {"i": str(created.json()["id"])},
                )
                published = conn.scalar(
                    text("SELECT count(*) FROM event WHERE type = 'incident.created'")
                )
            assert (staged, audited, published) == (0, 1, n + 1)
        deadline = time.monotonic() + 5
        while not list(folder.glob("audit-*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        periodic = sorted(folder.glob("audit-*.json"))
        assert periodic, "no checkpoint within 5 s at a 1 s period"
        httpx.post(f"{base}/api/incidents", json=_incident(9), headers=dispatcher)
        verdict = httpx.get(f"{base}/api/audit/verify", headers=auditor).json()
        assert verdict["ok"] is True and verdict["bad_rows"] == [] and verdict["checkpoints"] >= 1
    with engine.connect() as conn:
        head = conn.scalar(text("SELECT max(id) FROM audit_event"))
    last = json.loads(sorted(folder.glob("audit-*.json"))[-1].read_text())
    assert last["last_id"] == head  # the last one, written on the way out, has every row
