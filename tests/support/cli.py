"""The ``emergency`` CLI run in-process (``invoke``), the secret key the CLI tests give
it, a migrated database of its own that the CLI reaches through the environment, and a row
count through an engine."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from command.cli import app
from command.migrate import upgrade
from core.config import get_settings
from tests.support.db import create_database, drop_database, unavailable

CLI_SECRET = secrets.token_urlsafe(48)
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())


@contextmanager
def cli_database(
    monkeypatch: pytest.MonkeyPatch, name: str, *, seed: Callable[[str], None] | None = None
) -> Iterator[str]:
    """A new migrated database (``seed(url)`` fills it first, if given) that the CLI, in
    this process or a child, reaches through DATABASE_URL; dropped after."""
    try:
        url = create_database(name)
    except Exception as exc:  # the shared fixtures' policy: skip on a laptop, fail in CI
        unavailable(str(exc).splitlines()[0])
        raise
    try:
        upgrade(url)
        if seed is not None:
            seed(url)
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.delenv("EMERGENCY_DATABASE_URL", raising=False)
        monkeypatch.setenv("EMERGENCY_SECRET_KEY", CLI_SECRET)
        monkeypatch.setenv("EMERGENCY_ENV", "test")
        monkeypatch.setenv("EMERGENCY_DEMO_CITY", "helsinki")
        get_settings.cache_clear()
        yield url
    finally:
        get_settings.cache_clear()
        drop_database(url)
