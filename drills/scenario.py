"""A drill scenario (DESIGN "Drills"): what to simulate, read from YAML and checked whole.

Every field is validated before anything runs, and every problem is reported with where it
is (``generators.2.rate_per_h: must be >= 0``), so a planner fixes the file in one pass.
``from_db`` for stations, units and response plans is resolved by the caller (the command
side reads today's fleet); this module never touches the database or the network.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

POLICIES = ("nearest", "plan", "move_up")
SEVERITIES = ("minor", "moderate", "severe", "extreme")
MAX_BYTES = 2_000_000  # a scenario file (historical CSVs are separate files)

Lon = Annotated[float, Field(ge=-180, le=180)]
Lat = Annotated[float, Field(ge=-90, le=90)]


class ScenarioError(ValueError):
    """A scenario that cannot run; ``problems`` lists ``(where, what)`` for each fault."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- distributions (seconds) ---------------------------------------------------------------
class Fixed(_Strict):
    dist: Literal["fixed"]
    value: float = Field(ge=0)

    @property
    def mean_s(self) -> float:
        return self.value


class Exponential(_Strict):
    dist: Literal["exponential"]
    mean: float = Field(gt=0)

    @property
    def mean_s(self) -> float:
        return self.mean


class Lognormal(_Strict):
    """Parametrised by the mean and standard deviation of the time itself (not its log)."""

    dist: Literal["lognormal"]
    mean: float = Field(gt=0)
    sd: float = Field(ge=0)

    @property
    def mean_s(self) -> float:
        return self.mean


class Uniform(_Strict):
    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self

    @property
    def mean_s(self) -> float:
        return (self.low + self.high) / 2


Dist = Annotated[Fixed | Exponential | Lognormal | Uniform, Field(discriminator="dist")]
ZERO = Fixed(dist="fixed", value=0)


# --- places -------------------------------------------------------------------------------
class Polygon(_Strict):
    """A GeoJSON Polygon (WGS-84 lon/lat); the first ring is the outline, the rest holes."""

    type: Literal["Polygon"]
    coordinates: list[list[tuple[Lon, Lat]]] = Field(min_length=1)

    @field_validator("coordinates")
    @classmethod
    def _rings(cls, rings: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
        import shapely

        for ring in rings:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise ValueError(
                    "each ring needs at least 4 positions, the last equal to the first"
                )
        shape = shapely.Polygon(rings[0], rings[1:])
        if not shape.is_valid:
            raise ValueError(f"invalid polygon: {shapely.is_valid_reason(shape)}")
        if shape.area == 0:
            raise ValueError("the polygon has no area")
        return rings


class WeightedPolygon(_Strict):
    polygon: Polygon
    weight: float = Field(gt=0)


class Generator(_Strict):
    """Incidents of one type and severity: Poisson at ``rate_per_h`` times the hour's
    multiplier (``hourly_profile``, 24 values, local hours of ``start``), placed at one of
    ``points`` (uniformly), uniformly in ``polygon``, in ``polygons`` by weight, or read from
    ``csv`` (historical incidents: columns time, lon, lat, type, severity; ``type`` and
    ``severity`` here are then only defaults for empty cells, and the rate is unused)."""

    type: str = Field(min_length=1, max_length=40)
    severity: Literal["minor", "moderate", "severe", "extreme"] = "moderate"
    rate_per_h: float = Field(default=0.0, ge=0, le=10_000)
    hourly_profile: list[Annotated[float, Field(ge=0)]] | None = None
    points: list[tuple[Lon, Lat]] | None = Field(default=None, min_length=1)
    polygon: Polygon | None = None
    polygons: list[WeightedPolygon] | None = Field(default=None, min_length=1)
    csv: str | None = None

    @field_validator("hourly_profile")
    @classmethod
    def _day(cls, profile: list[float] | None) -> list[float] | None:
        if profile is not None and len(profile) != 24:
            raise ValueError(f"needs 24 hourly multipliers, got {len(profile)}")
        return profile

    @model_validator(mode="after")
    def _one_place(self) -> Generator:
        given = [k for k in ("points", "polygon", "polygons", "csv") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of points, polygon, polygons or csv"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


# --- fleet ----------------------------------------------------------------------------------
class StationSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    lon: Lon
    lat: Lat


class UnitSpec(_Strict):
    callsign: str = Field(min_length=1, max_length=40)
    type: str = Field(default="ambulance", min_length=1, max_length=40)
    capabilities: tuple[str, ...] = ()
    station: str = Field(min_length=1, max_length=200)


class HospitalSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    lon: Lon
    lat: Lat


class NeedSpec(_Strict):
    capability: str = Field(min_length=1, max_length=40)
    count: int = Field(ge=1, le=50)


ResponsePlans = dict[str, dict[str, list[NeedSpec]]]  # type -> severity -> lines


class Targets(_Strict):
    """``response_s`` is the default response target (reported -> first on scene); by_type
    overrides it per incident type (``{fire: 300}``), as the live targets do."""

    response_s: int | None = Field(default=None, gt=0)
    dispatch_s: int | None = Field(default=None, ge=0)
    travel_s: int | None = Field(default=None, gt=0)
    by_type: dict[str, int] = {}


class Service(_Strict):
    dispatch_delay_s: Dist = ZERO
    turnout_s: Dist = ZERO
    on_scene_s: Dist = Exponential(dist="exponential", mean=1800)
    transport_probability: float = Field(default=0.0, ge=0, le=1)
    transport_s: Dist = ZERO  # used when no hospitals are given: the whole transport
    handover_s: Dist = ZERO  # at the hospital, after the drive (hospitals given)


class Closure(_Strict):
    at_s: float = Field(ge=0)
    until_s: float | None = Field(default=None, gt=0)
    polygon: Polygon
    name: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Closure:
        if self.until_s is not None and self.until_s <= self.at_s:
            raise ValueError("until_s must be after at_s")
        return self


class AlertInject(_Strict):
    """A CAP file injected at ``at_s``; read and turned into incidents by the caller."""

    at_s: float = Field(ge=0)
    file: str = Field(min_length=1)


class Inject(_Strict):
    """One incident injected at a time (a scripted event, or a CAP alert's area)."""

    at_s: float = Field(ge=0)
    lon: Lon
    lat: Lat
    type: str = Field(min_length=1, max_length=40)
    severity: Literal["minor", "moderate", "severe", "extreme"] = "severe"
    title: str | None = Field(default=None, max_length=200)


class MoveUp(_Strict):
    """The move-up rule's knobs (see ``drills.policies``)."""

    busy_fraction: float | None = Field(default=None, gt=0, lt=1)  # MEXCLP's q; None: estimate
    min_gain: float = Field(default=0.005, ge=0)  # share of demand a move must add
    max_drive_s: float = Field(default=900, gt=0)  # never relocate further than this


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=200)
    network: str = "loaded"
    start: datetime
    duration_s: float = Field(gt=0, le=400 * 86_400)
    seed: int = Field(default=0, ge=0, lt=2**63)
    replications: int = Field(default=1, ge=1, le=1000)
    policies: list[Literal["nearest", "plan", "move_up"]] = Field(default=["nearest"], min_length=1)
    targets: Targets = Targets()
    stations: Literal["from_db"] | list[StationSpec] = "from_db"
    units: Literal["from_db"] | list[UnitSpec] = "from_db"
    hospitals: list[HospitalSpec] = []
    response_plans: Literal["from_db"] | ResponsePlans = "from_db"
    generators: list[Generator] = []
    injects: list[Inject] = []
    service: Service = Service()
    closures: list[Closure] = []
    alerts: list[AlertInject] = []
    plan_interval_s: float = Field(default=30, gt=0, le=3600)
    move_up: MoveUp = MoveUp()
    sample_interval_s: float = Field(default=900, ge=60)  # coverage and the day's series
    # KPIs count calls reported from warmup_s on (the run starts with every unit free).
    warmup_s: float = Field(default=0, ge=0)

    @field_validator("start")
    @classmethod
    def _aware(cls, start: datetime) -> datetime:
        if start.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-07-01T08:00:00+08:00")
        return start

    @field_validator("policies")
    @classmethod
    def _distinct(cls, policies: list[str]) -> list[str]:
        if len(set(policies)) != len(policies):
            raise ValueError("each policy once")
        return policies

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if isinstance(self.stations, list):
            names = [s.name for s in self.stations]
            if len(set(names)) != len(names):
                raise ValueError("stations: each name once")
            if isinstance(self.units, list):
                unknown = sorted({u.station for u in self.units} - set(names))
                if unknown:
                    raise ValueError(f"units name stations that are not listed: {unknown}")
        if isinstance(self.units, list):
            calls = [u.callsign for u in self.units]
            if len(set(calls)) != len(calls):
                raise ValueError("units: each callsign once")
        if isinstance(self.units, list) and self.stations == "from_db":
            raise ValueError("inline units need inline stations")
        if isinstance(self.response_plans, dict):
            for type_, by in self.response_plans.items():
                bad = sorted(set(by) - set(SEVERITIES))
                if bad:
                    raise ValueError(f"response_plans.{type_}: unknown severities {bad}")
        for c in self.closures:
            if c.at_s >= self.duration_s:
                raise ValueError(f"closure at_s {c.at_s} is after the end ({self.duration_s})")
        if self.warmup_s >= self.duration_s:
            raise ValueError("warmup_s must be shorter than duration_s")
        if not self.generators and not self.injects and not self.alerts:
            raise ValueError("no incidents: give generators, injects or alerts")
        return self

    @property
    def days(self) -> float:
        return self.duration_s / 86_400

    def expected_incidents(self) -> float:
        """Incidents the Poisson generators produce on average (CSV rows not counted)."""
        total = 0.0
        for g in self.generators:
            if g.csv is None:
                profile = g.hourly_profile or [1.0] * 24
                total += g.rate_per_h * sum(profile) / 24 * self.duration_s / 3600
        return total


def _location(loc: tuple[Any, ...]) -> str:
    """``generators.0.rate_per_h``: the path without pydantic's union-branch labels."""
    skip = ("function-", "tagged-union", "literal[", "list[", "dict[", "tuple[")
    return ".".join(str(p) for p in loc if not str(p).startswith(skip))


def parse(data: Any) -> Scenario:
    """A Scenario from parsed YAML/JSON, or ScenarioError naming every problem."""
    if not isinstance(data, dict):
        raise ScenarioError([("", "a scenario is a mapping of fields (see DESIGN, Drills)")])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for err in exc.errors(include_url=False):
            where = _location(err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if (
                err["type"] == "literal_error"
                and "'from_db'" in msg
                and where in ("stations", "units", "response_plans")
            ):
                msg = "use from_db or list them inline"
            problems.setdefault(where, msg)
        # `stations: [...]` with a bad entry also fails the from_db branch: keep the entry's fault
        for where in [w for w, m in problems.items() if m == "use from_db or list them inline"]:
            if any(w2.startswith(where + ".") for w2 in problems):
                del problems[where]
        raise ScenarioError(sorted(problems.items())) from None


def loads(text: str | bytes) -> Scenario:
    """Parse YAML (or JSON) text. Only plain YAML: no tags, no Python objects."""
    if len(text) > MAX_BYTES:
        raise ScenarioError([("", f"the scenario is larger than {MAX_BYTES} bytes")])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError([("", f"not valid YAML: {exc}")]) from None
    return parse(data)


def load(path: Path) -> Scenario:
    """Read a scenario file; relative ``csv``, ``alerts[].file`` and ``network`` paths are
    resolved against the file's folder (see ``resolve_paths``)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ScenarioError([("", f"cannot read {path}: {exc.strerror}")]) from None
    return resolve_paths(loads(text), path.parent)


def resolve_paths(scenario: Scenario, folder: Path) -> Scenario:
    """The scenario with relative file paths made absolute against ``folder``."""

    def at(name: str) -> str:
        p = Path(name).expanduser()
        return str(p if p.is_absolute() else (folder / p).resolve())

    generators = [
        g.model_copy(update={"csv": at(g.csv)}) if g.csv else g for g in scenario.generators
    ]
    alerts = [a.model_copy(update={"file": at(a.file)}) for a in scenario.alerts]
    network = scenario.network if scenario.network == "loaded" else at(scenario.network)
    return scenario.model_copy(
        update={"generators": generators, "alerts": alerts, "network": network}
    )


def public(scenario: Scenario) -> dict[str, Any]:
    """The scenario as it goes into a report: JSON types, and file names without folders
    (a report holds no paths of the machine that ran it)."""
    data = scenario.model_dump(mode="json", exclude_none=True)
    if data.get("network") not in (None, "loaded"):
        data["network"] = Path(data["network"]).name
    for g in data.get("generators", []):
        if "csv" in g:
            g["csv"] = Path(g["csv"]).name
    for a in data.get("alerts", []):
        a["file"] = Path(a["file"]).name
    return data


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
