"""Response targets per incident type, and whether one incident met its target (pure: no
database, no web, no settings), shared by the KPIs, the console's timers and the drills.
``command.kpis.service.target_table`` builds the table from the settings.

Definitions (DESIGN "Targets"), all in seconds:

- ``dispatch_s``: reported -> dispatched (the first task's assignment), default 60;
- ``travel_s``: dispatched -> first unit on scene, default 480 (fire 300);
- ``response_s``: reported -> first unit on scene; its target is ``dispatch_s + travel_s``
  unless the type sets ``response_s`` itself.

An incident's outcome against its response target is one of:

- ``within``: a unit was on scene at most ``response_s`` after the report;
- ``missed``: the first unit arrived later, or no unit has arrived and the target has
  passed (``reported_at + response_s <= as_of``);
- ``pending``: no unit has arrived yet and the target has not passed: it may still be met,
  so it is left out of the share (处置及时率 = within / (within + missed)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Outcome = Literal["within", "missed", "pending"]


@dataclass(frozen=True)
class Target:
    """One incident type's targets, in seconds."""

    dispatch_s: int
    travel_s: int
    response_s: int


@dataclass(frozen=True)
class TargetTable:
    """The default targets and the per-type overrides (``dispatch_s``, ``travel_s``,
    ``response_s``; any subset)."""

    dispatch_s: int = 60
    travel_s: int = 480
    by_type: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: {"fire": {"travel_s": 300}}
    )

    @property
    def default(self) -> Target:
        return target_for(None, self)

    def for_type(self, incident_type: str | None) -> Target:
        return target_for(incident_type, self)

    def overridden(self) -> dict[str, Target]:
        """The target of every type that has an override, by type."""
        return {t: self.for_type(t) for t in sorted(self.by_type)}


def target_for(incident_type: str | None, table: TargetTable) -> Target:
    """The targets of ``incident_type`` (the defaults for a type without overrides)."""
    own = table.by_type.get(incident_type, {}) if incident_type is not None else {}
    dispatch_s = own.get("dispatch_s", table.dispatch_s)
    travel_s = own.get("travel_s", table.travel_s)
    return Target(dispatch_s, travel_s, own.get("response_s", dispatch_s + travel_s))


def outcome(
    *,
    reported_at: datetime,
    on_scene_at: datetime | None,
    response_s: int,
    as_of: datetime,
) -> Outcome:
    """One incident against its response target, judged at ``as_of`` (see the module's
    docstring); an arrival exactly on the target counts as within."""
    deadline = reported_at + timedelta(seconds=response_s)
    if on_scene_at is not None:
        return "within" if on_scene_at <= deadline else "missed"
    return "missed" if deadline <= as_of else "pending"


def share(within: int, missed: int) -> float | None:
    """处置及时率: within / (within + missed); None when nothing has been decided yet."""
    decided = within + missed
    return within / decided if decided else None
