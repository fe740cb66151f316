"""`emergency drill start SCENARIO.yaml --live [--speed N]` and `emergency drill stop ID`
(tabletop drills: dispatchers work the injects in the real console)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from command.drills.cli import drill_app  # defined before cli.py imports this module

err = Console(stderr=True)


def _sessions() -> Any:
    from command.cli import _sessions as cli_sessions

    return cli_sessions()


def _line(item: dict[str, Any]) -> str:
    from command.drills.tabletop import _hms

    when = "CAP alert" if item.get("at_s") is None else f"T+{_hms(item['at_s'])}"
    count = f"inject {item['n']}/{item['of']}" if "n" in item else "inject"
    title = item.get("title") or item["type"]
    return (
        f"{when}  {count}  {item['type']} {item['severity']}  {title}  "
        f"-> incident {item['incident_id']}"
    )


@drill_app.command("start")
def start(
    scenario: Annotated[Path, typer.Argument(help="the scenario YAML (DESIGN: Drills)")],
    live: Annotated[
        bool, typer.Option("--live", help="a tabletop drill in the real console (required)")
    ] = False,
    speed: Annotated[
        float, typer.Option(min=0.001, max=100_000, help="simulated seconds per real second")
    ] = 1.0,
) -> None:
    """Start a tabletop drill and run its clock here until the scenario's end or Ctrl-C:
    stand-in units mirror the fleet, and the scenario's incidents are injected into the
    drill's scope (console: /screen?drill=ID) as the simulated clock reaches them."""
    from command.drills import tabletop
    from core.db import session_scope
    from drills import scenario as sc

    if not live:
        err.print("[red]error:[/red] `drill start` needs --live (a tabletop drill); "
                  "simulations are `drill run`")  # fmt: skip
        raise typer.Exit(2)
    try:
        spec = sc.load(scenario)
        sessions = _sessions()
        with session_scope(sessions) as session:
            drill = tabletop.start(session, spec, speed=speed, principal=tabletop.RUNNER)
            state = tabletop.tabletop_state(drill)
            drill_id = drill.id
    except sc.ScenarioError as exc:
        err.print(f"[red]error:[/red] {scenario} cannot run:")
        for where, what in exc.problems:
            err.print(f"  {where}: {what}" if where else f"  {what}", markup=False)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({"drill_id": drill_id, **state["injects"],
                           "console": f"/screen?drill={drill_id}"}))  # fmt: skip
    err.print(
        f"drill {drill_id} ({spec.name}) running at x{speed:g}: {state['injects']['total']} "
        f"injects over {spec.duration_s:g} simulated s; stand-ins are D{drill_id}-<callsign>. "
        f"Ctrl-C or `emergency drill stop {drill_id}` ends it."
    )
    status = tabletop.run_clock(
        sessions, drill_id, on_inject=lambda item: typer.echo(_line(item), nl=True)
    )
    typer.echo(json.dumps({"drill_id": drill_id, "status": status}))


@drill_app.command("stop")
def stop(drill_id: Annotated[int, typer.Argument(min=1, help="the tabletop drill's id")]) -> None:
    """Stop a running tabletop drill (its runner, in another shell, notices and ends);
    its report is stored (GET /api/drills/ID/report)."""
    from command.drills import tabletop
    from core.db import session_scope

    with session_scope(_sessions()) as session:
        drill = tabletop.stop(session, drill_id, principal=tabletop.RUNNER)
        out = tabletop.drill_dict(drill)
    typer.echo(json.dumps(out, ensure_ascii=False))
