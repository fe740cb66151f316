"""Telemetry routes remember a checked token for a second: no query per fix, and a
disabled user's positions are refused within that second (every other route at once)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from command.auth.dependency import TokenMemory
from core.security import Principal
from tests.support.world import World


def fix(lon: float) -> dict[str, object]:
    return {"lon": lon, "lat": 60.17, "recorded_at": datetime.now(UTC).isoformat()}


def test_a_disabled_users_positions_are_refused_within_the_memory(
    client: TestClient, world: World, session: Session
):
    client.app.state.token_memory = TokenMemory(ttl_s=0.3)  # type: ignore[attr-defined]
    uid = world.unit_a.id
    h = world.h("responder")
    assert client.post(f"/api/units/{uid}/position", json=fix(24.940), headers=h).status_code == 202
    session.execute(text("UPDATE \"user\" SET active = false WHERE username = 'responder'"))
    session.commit()
    # Every other route checks at once.
    assert client.get(f"/api/units/{uid}", headers=h).status_code == 401
    # The position route took the token less than the memory's time ago.
    time.sleep(0.35)
    r = client.post(f"/api/units/{uid}/position", json=fix(24.941), headers=h)
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    r = client.post(
        "/api/positions", json={"positions": [{"unit_id": uid, **fix(24.942)}]}, headers=h
    )
    assert r.status_code == 401
    count = session.execute(text("SELECT count(*) FROM unit_position")).scalar_one()
    assert count == 1


def test_a_bad_token_is_never_remembered(client: TestClient, world: World):
    uid = world.unit_a.id
    for _ in range(2):
        r = client.post(
            f"/api/units/{uid}/position", json=fix(24.94), headers={"Authorization": "Bearer nope"}
        )
        assert r.status_code == 401
    memory = client.app.state.token_memory  # type: ignore[attr-defined]
    assert memory.get("nope") is None


def test_memory_never_outlives_the_token():
    memory = TokenMemory(ttl_s=10)
    who = Principal(kind="user", id=1, name="a", role="dispatcher")
    memory.put("t1", who, expires_at=time.time() + 0.05)
    assert memory.get("t1") == who
    time.sleep(0.06)
    assert memory.get("t1") is None
    memory.put("t2", who, expires_at=time.time() - 1)  # already expired: not kept
    assert memory.get("t2") is None
