"""The KPI answer (GET /api/kpis)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TargetRead(BaseModel):
    """One incident type's targets, in seconds (response_s: reported -> first on scene)."""

    dispatch_s: int
    travel_s: int
    response_s: int


class TargetsRead(BaseModel):
    default: TargetRead
    by_type: dict[str, TargetRead] = Field(description="types with their own targets")


class DurationStats(BaseModel):
    """Continuous percentiles (percentile_cont) of one interval over the incidents that
    have both ends; ``n`` of them. Seconds; null when n is 0."""

    n: int
    p50_s: float | None
    p90_s: float | None
    p95_s: float | None


class TimesRead(BaseModel):
    reported_to_dispatched: DurationStats
    dispatched_to_on_scene: DurationStats
    reported_to_on_scene: DurationStats


class HistogramRead(BaseModel):
    """Response times (reported -> first unit on scene) of the window's incidents that have
    one, in fixed bins of ``bin_s`` seconds: ``counts[i]`` counts ``i * bin_s <= t <
    (i + 1) * bin_s`` for the first ``max_s / bin_s`` bins; the last bin counts every
    ``t >= max_s`` (overflow). The counts add up to ``times.reported_to_on_scene.n``;
    ``target_s`` is the default response target, to draw against."""

    bin_s: int
    max_s: int
    counts: list[int]
    target_s: int


class WithinTargetRead(BaseModel):
    """处置及时率: ``share`` = within / (within + missed); pending incidents (no unit on
    scene yet, target not yet passed) are left out; null when nothing is decided."""

    within: int
    missed: int
    pending: int
    share: float | None


class TypeKpis(BaseModel):
    type: str
    count: int
    target: TargetRead
    within_target: WithinTargetRead


class IncidentKpis(BaseModel):
    total: int
    by_status: dict[str, int]
    by_type: list[TypeKpis]


class UnitKpis(BaseModel):
    """Every unit now (not windowed); ``available_share`` = available / total."""

    total: int
    by_status: dict[str, int]
    available: int
    available_share: float | None


class ShelterKpis(BaseModel):
    """Open shelters now: ``occupancy_share`` = occupancy / capacity, ``committed_share``
    = (occupancy + planned_arrivals) / capacity; null without capacity."""

    open: int
    capacity: int
    occupancy: int
    planned_arrivals: int
    occupancy_share: float | None
    committed_share: float | None


class LowStockRead(BaseModel):
    stock_id: int
    warehouse_id: int
    warehouse: str
    item: str
    unit_of_measure: str
    quantity: int
    low_water: int


class KpisRead(BaseModel):
    """The command centre's figures for incidents reported in [since, until)."""

    since: datetime
    until: datetime
    as_of: datetime = Field(description="when the figures were computed (judges pending)")
    drill: bool
    drill_id: int | None = None
    targets: TargetsRead
    incidents: IncidentKpis
    times: TimesRead
    within_target: WithinTargetRead
    response_histogram: HistogramRead
    units: UnitKpis
    shelters: ShelterKpis
    low_stock: list[LowStockRead]
