"""`emergency drill ...`: run a scenario (``run``); tabletop commands come from tabletop_cli."""

from __future__ import annotations

import typer

drill_app = typer.Typer(
    help="Drills (演练): simulate scenarios, run tabletop exercises.", no_args_is_help=True
)

from command.drills import tabletop_cli as _tabletop  # noqa: E402,F401 - registers start/stop
