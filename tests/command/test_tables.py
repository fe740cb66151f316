"""Each room's tables stand alone: importing one room's models in a fresh interpreter maps
the tables its foreign keys point at, so a script or a test that needs only that room can
flush rows without importing the whole app. And command.tables holds every room's table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("auth", "drills", "incidents", "intake", "planning", "response_plans", "tasks", "zones")

RESOLVE = """
import importlib, sys
importlib.import_module(sys.argv[1])
from core.db import Base
for table in Base.metadata.sorted_tables:
    for fk in table.foreign_keys:
        fk.column  # raises NoReferencedTableError when the target is not mapped
print(len(Base.metadata.tables))
"""


@pytest.mark.parametrize("room", ROOMS)
def test_a_rooms_models_map_their_foreign_key_targets(room: str) -> None:
    done = subprocess.run(  # noqa: S603 - our interpreter, our code
        [sys.executable, "-c", RESOLVE, f"command.{room}.models"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) >= 1


def test_command_tables_lists_every_rooms_tables() -> None:
    import command.tables  # noqa: F401
    from core.db import Base

    rooms = {p.parent.name for p in (ROOT / "command").glob("*/models.py")}
    assert rooms == set(ROOMS)
    expected = {
        "incident", "task", "dispatch_decision", "alert", "alert_info", "alert_area",
        "user", "api_key", "api_nonce", "login_throttle", "response_plan", "plan_record",
        "supply_request", "warning_zone", "drill",
    }  # fmt: skip
    missing = expected - set(Base.metadata.tables)
    assert not missing
