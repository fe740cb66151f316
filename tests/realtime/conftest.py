"""Realtime fixtures: a committed database of its own per module, and the anyio backend.

The hub reads what other transactions commit (LISTEN/NOTIFY and the event table), so
these tests cannot use the rolled-back per-test connection: each module gets a database
of its own (cloned from the PostGIS template, migrated, dropped afterwards). The plain
helpers (``LiveDb``, ``Ws``, ``Feed``, ...) are in tests/support/live.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.db import drop_database
from tests.support.live import LiveDb, make_live_db


@pytest.fixture(scope="module")
def live_db(database_url: str) -> Iterator[LiveDb]:
    """A committed database for this module (skips or fails like every db test)."""
    del database_url  # asked for so a missing PostGIS skips (or fails in CI) the same way
    db = make_live_db("emergency_live")
    try:
        yield db
    finally:
        db.engine.dispose()
        drop_database(db.url)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
