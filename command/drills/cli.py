"""`emergency drill ...`: run a scenario (``run``); tabletop commands come from tabletop_cli."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.config import Settings, get_settings

drill_app = typer.Typer(
    help="Drills (演练): simulate scenarios, run tabletop exercises.", no_args_is_help=True
)
err = Console(stderr=True)


@drill_app.command("run")
def run_scenario(
    scenario: Annotated[Path, typer.Argument(help="the scenario YAML (DESIGN: Drills)")],
    out: Annotated[
        Path | None, typer.Option(help="folder for the report (default ./drill-<name>)")
    ] = None,
    replications: Annotated[
        int | None, typer.Option(min=1, max=1000, help="instead of the scenario's")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="parallel processes")] = 1,
    dask: Annotated[
        str | None,
        typer.Option(
            help="run on Dask: a scheduler's address (tcp://host:8786), or 'local' for a "
            "local cluster (needs: uv sync --extra distributed)"
        ),
    ] = None,
) -> None:
    """Simulate a scenario: every policy over its replications, on the real roads. Writes
    report.json, report.html and events.csv, and prints each policy's KPIs. Reads the
    database only for what the scenario takes `from_db`."""
    from drills import scenario as sc
    from drills.distributed import DistributedUnavailable
    from drills.report import write
    from drills.runner import run

    settings = get_settings()
    try:
        spec = sc.load(scenario)
        if replications is not None:
            spec = spec.model_copy(update={"replications": replications})
        fleet, notes = _fleet(spec, settings)
        injects = _injects(spec)
        network = _network(spec, settings)
    except sc.ScenarioError as exc:
        _refuse(scenario, exc.problems)
    for note in notes:
        err.print(f"[yellow]note:[/yellow] {note}")
    folder = out or Path.cwd() / f"drill-{slug(spec.name)}"
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        runs = spec.replications * len(spec.policies)
        task = progress.add_task(f"{spec.name}: {runs} runs", total=1.0)
        try:
            result = run(
                spec,
                fleet,
                network,
                injects=injects,
                workers=workers,
                progress=lambda done: progress.update(task, completed=done),
                backend="dask" if dask else "processes",
                address=None if dask in (None, "local") else dask,
            )
        except sc.ScenarioError as exc:
            _refuse(scenario, exc.problems)
        except DistributedUnavailable as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    write(result, folder)
    summary(result.report, Console(width=110))
    typer.echo(f"report: {folder}")


def _refuse(path: Path, problems: list[tuple[str, str]]) -> NoReturn:
    err.print(f"[red]error:[/red] {path} cannot run:")
    for where, what in problems:
        err.print(f"  {where}: {what}" if where else f"  {what}", markup=False)
    raise typer.Exit(2)


def slug(name: str) -> str:
    """A folder-safe form of a scenario's name (letters and digits of any script kept)."""
    return re.sub(r"[^\w]+", "-", name.lower()).strip("-_")[:60] or "scenario"


def _sessions(settings: Settings) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from core.db import make_sessionmaker, sqlalchemy_url

    return make_sessionmaker(
        create_engine(sqlalchemy_url(settings.database_url), poolclass=NullPool)
    )


def _fleet(spec: Any, settings: Settings) -> tuple[Any, list[str]]:
    """The scenario's fleet; the database only when the scenario reads ``from_db``."""
    from sqlalchemy.exc import SQLAlchemyError

    from command.drills import fleet
    from drills.scenario import ScenarioError

    if not fleet.needs_database(spec):
        return fleet.resolve(spec, None)
    try:
        with _sessions(settings)() as session:
            return fleet.resolve(spec, session)
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0]
        raise ScenarioError(
            [("", f"the scenario reads from_db and the database is not reachable: {first}")]
        ) from None


def _injects(spec: Any) -> list[Any]:
    from command.drills.fleet import alert_injects

    return alert_injects(spec.alerts)


def _network(spec: Any, settings: Settings) -> Any:
    """``loaded``: the network the server routes on; otherwise that OSM file."""
    from command import roads
    from drills.scenario import ScenarioError
    from drills.world import NetworkSource

    if spec.network == "loaded":
        sessions = None if settings.osm_file is not None else _sessions(settings)
        source = roads.road_source(settings, sessions)  # an OSM file or a load-roads layer
        return NetworkSource(
            source.path, settings.road_profile, settings.graph_cache_dir, source.mapping
        )
    path = Path(spec.network)
    if not path.is_file():
        raise ScenarioError([("network", f"no such OSM file: {path.name}")])
    return NetworkSource(path, settings.road_profile, settings.graph_cache_dir)


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "s":
        return f"{value:,.0f}"
    return f"{value:.1%}"


COLUMNS = (
    ("p50 (s)", ("response_s", "p50"), "s"),
    ("p90 (s)", ("response_s", "p90"), "s"),
    ("p95 (s)", ("response_s", "p95"), "s"),
    ("within target", ("within_target",), "%"),
    ("queued", ("queued_fraction",), "%"),
    ("utilisation", ("utilisation",), "%"),
)


def summary(report: dict[str, Any], console: Console) -> None:
    """One row per policy: response percentiles, within target, queued, utilisation
    (means over the replications)."""
    table = Table(title=f"{report.get('scenario')}: {report.get('replications')} replications")
    table.add_column("policy")
    table.add_column("incidents", justify="right")
    for title, _, _ in COLUMNS:
        table.add_column(title, justify="right")
    for policy, entry in report.get("policies", {}).items():
        kpis = entry.get("kpis", {})
        cells = []
        for _, keys, kind in COLUMNS:
            value: Any = kpis
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            cells.append(_fmt(value, kind))
        table.add_row(policy, _fmt(kpis.get("incidents"), "s"), *cells)
    console.print(table)


from command.drills import tabletop_cli as _tabletop  # noqa: E402,F401 - registers start/stop
