"""The ``emergency`` CLI run in-process (``invoke``), the secret key the CLI tests give
it, and a row count through an engine."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from command.cli import app

CLI_SECRET = secrets.token_urlsafe(48)
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())
