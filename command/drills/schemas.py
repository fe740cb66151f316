"""What /api/drills takes (a scenario as JSON or YAML, within the limits of HTTP) and what it
answers (a drill's state, a page of them, what a delete removed)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel, Field

from core.errors import InvalidInput, UnsupportedMediaType
from drills import scenario as sc

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
# One request must not hold the server for hours: the limits of a scenario sent over HTTP
# (the CLI has none). The message says each, so a planner knows to use the CLI instead.
MAX_REPLICATIONS = 50
MAX_RUNS = 100  # replications x policies
MAX_DURATION_S = 31 * 86_400
MAX_INCIDENTS = 1_000_000  # expected incidents x replications x policies


class InvalidScenario(InvalidInput):
    """A scenario that cannot run; ``details`` lists ``{"field", "message"}`` per problem."""

    code = "invalid_scenario"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        where, what = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"{where}: {what}{more}" if where else f"{what}{more}",
            details=[{"field": w, "message": m} for w, m in problems],
        )


def read_scenario(body: bytes, content_type: str | None) -> sc.Scenario:
    """The scenario posted as JSON or YAML, checked whole and for what HTTP allows."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in JSON_TYPES + YAML_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {kind or 'missing'!r}: send application/json or application/yaml"
        )
    try:
        data = _decode(body, kind)
        problems = _not_finite(data)
        if problems:
            raise sc.ScenarioError(problems)
        scenario = sc.parse(data)
    except sc.ScenarioError as exc:
        raise InvalidScenario(exc.problems) from None
    problems = http_problems(scenario)
    if problems:
        raise InvalidScenario(problems)
    return scenario


def _decode(body: bytes, kind: str) -> Any:
    if kind in JSON_TYPES:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise sc.ScenarioError([("", f"not valid JSON: {exc}")]) from None
    try:
        return yaml.safe_load(body)
    except (yaml.YAMLError, RecursionError) as exc:
        raise sc.ScenarioError([("", f"not valid YAML: {exc}")]) from None


def _not_finite(data: Any) -> list[tuple[str, str]]:
    """NaN and infinities (JSON's NaN/Infinity, YAML's .nan/.inf): never a time or a place,
    and nothing the database can store. Walked without recursion (the nesting is the
    sender's)."""
    found = []
    stack: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            found.append((".".join(where), f"{value} is not a finite number"))
        elif isinstance(value, dict):
            stack.extend(((*where, str(k)), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*where, str(i)), v) for i, v in enumerate(value))
    return sorted(found)


def http_problems(scenario: sc.Scenario) -> list[tuple[str, str]]:
    """What a scenario posted over HTTP may not do: name a file on the server, or be so
    large that one request holds the server for hours."""
    out = []
    if scenario.network != "loaded":
        why = "a scenario posted over HTTP uses network: loaded; server paths are refused"
        out.append(("network", why))
    for i, g in enumerate(scenario.generators):
        if g.csv is not None:
            out.append((f"generators.{i}.csv", "CSV files are not taken over HTTP: use the CLI"))
    for i, _ in enumerate(scenario.alerts):
        out.append((f"alerts.{i}.file", "CAP files are not taken over HTTP: use the CLI"))
    runs = scenario.replications * len(scenario.policies)
    if scenario.replications > MAX_REPLICATIONS:
        out.append(("replications", f"at most {MAX_REPLICATIONS} over HTTP (the CLI has no limit)"))
    elif runs > MAX_RUNS:
        out.append(("replications", f"replications x policies at most {MAX_RUNS} over HTTP"))
    if scenario.duration_s > MAX_DURATION_S:
        out.append(("duration_s", f"at most {MAX_DURATION_S} s (31 days) over HTTP"))
    if scenario.expected_incidents() * runs > MAX_INCIDENTS:
        out.append(
            ("generators", f"about {scenario.expected_incidents() * runs:,.0f} incidents in "
             f"all runs; at most {MAX_INCIDENTS:,} over HTTP (the CLI has no limit)")
        )  # fmt: skip
    return out


# --- answers ---------------------------------------------------------------------------------


class DrillLinks(BaseModel):
    self: str
    report: str = Field(description="report.json once finished; `?format=html` for the page")
    replay: str = Field(description="the replay timeline of one policy (`?policy=`)")


class DrillRead(BaseModel):
    """A drill: a simulation run (mode ``run``) or a tabletop exercise (``tabletop``)."""

    id: int
    name: str
    mode: str = Field(description="run | tabletop")
    status: str = Field(description="queued | running | finished | failed | stopped")
    progress: float = Field(ge=0, le=1, description="share of the run done, 0..1")
    error: str | None = Field(description="why it failed (status failed)")
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: DrillLinks


class DrillDetail(DrillRead):
    """One drill, with the scenario as accepted (no server paths) and its policies."""

    policies: list[str]
    scenario: dict[str, Any]


class DrillSubmitted(DrillDetail):
    """The drill just queued, and what resolving ``from_db`` placed or left out."""

    fleet: dict[str, Any] = Field(
        description="`stations`, `units`, `hospitals` (counts) and `notes` (what was "
        "placed elsewhere or left out)"
    )


class DrillPage(BaseModel):
    """Drills, newest first (without their reports and replays)."""

    drills: list[DrillRead]
    total: int


class DrillDeleted(BaseModel):
    """What DELETE removed; the drill's audit rows stay (the chain is append-only)."""

    id: int
    deleted: dict[str, int] = Field(
        description="rows removed per kind: incidents, tasks, calls, dispatch_decisions, "
        "supply_requests, units (stand-ins), events"
    )
