"""A benchmark's own database: created, migrated, used and dropped, and its results file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from command.migrate import upgrade
from tests.support.db import create_database, drop_database

T = TypeVar("T")


def on_fresh_database(run: Callable[[str], T]) -> T | None:
    """``run(url)`` on a migrated database of its own, dropped afterwards whatever happens;
    None (and why, on stderr) when there is no PostGIS to create one on."""
    try:
        url = create_database("emergency_bench")
    except Exception as exc:
        print(f"no PostGIS to benchmark against: {exc}", file=sys.stderr)
        print("run ./scripts/setup.sh (or set DATABASE_URL)", file=sys.stderr)
        return None
    try:
        print(f"database {make_url(url).database}: migrating and loading ...", file=sys.stderr)
        upgrade(url)
        return run(url)
    finally:
        drop_database(url)


def write_results(path: Path, result: dict[str, Any], root: Path) -> None:
    """The figures as JSON, for comparing runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten to {path.relative_to(root)}")


def report_on_fresh_database(
    run: Callable[[str], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    path: Path,
    root: Path,
) -> int:
    """A benchmark's main: ``run`` on a fresh database, print ``render`` of its figures and
    write them to ``path``; exit status 0, or 2 without PostGIS."""
    result = on_fresh_database(run)
    if result is None:
        return 2
    print(render(result))
    write_results(path, result, root)
    return 0


def sign_in(client: Any, username: str, password: str) -> None:
    """Log ``client`` (an httpx client on the server's base URL) in: every later request
    carries the bearer token."""
    r = client.post("/api/auth/token", json={"username": username, "password": password})
    r.raise_for_status()
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
