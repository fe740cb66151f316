"""Throwaway PostGIS databases for tests and benchmarks: create, drop, the server's admin
URL, the skip-or-fail policy when there is no PostGIS, and the audit chain check."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.config import DEFAULT_DATABASE_URL
from core.db import make_engine, sqlalchemy_url


def admin_url() -> str:
    """The ``postgres`` database of the server that ``DATABASE_URL`` names."""
    base = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    return make_url(sqlalchemy_url(base)).set(database="postgres").render_as_string(False)


def unavailable(reason: str) -> None:
    """Skip the test without PostGIS, but fail it when CI=true (a missing database must
    never turn a CI run green by skipping)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostGIS is required in CI: {reason}")
    pytest.skip(f"no PostGIS: {reason}")


def create_database(prefix: str = "emergency_test") -> str:
    """A new, empty, migrated database (cloned from the PostGIS template when present)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            has_template = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = 'emergency_template'")
            )
            template = " TEMPLATE emergency_template" if has_template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{template}'))
    finally:
        admin.dispose()
    url = make_url(admin_url()).set(database=name).render_as_string(False)
    return url


def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def chain_ok(session: Session) -> bool:
    """Whether the audit chain verifies (links only) with the tests' key."""
    from core import audit_verify, changes

    return audit_verify.verify(session, changes.keyring(), checkpoint_dir=None).ok


def sql(database_url: str, statement: str, **params: Any) -> None:
    """Run one statement on ``database_url`` and commit (tests that set up rows a
    server in another process must see)."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()
