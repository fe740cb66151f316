"""One stored alert applied to its thread: the incidents and warning zones it creates,
updates, cancels or ends, and the Outcome that reports them (the rules are in
command/intake/service.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shapely import Geometry
from sqlalchemy import select
from sqlalchemy.orm import Session

from command.incidents.models import Incident
from command.incidents.service import INCIDENTS, move_change
from command.intake.mapping import Target
from command.intake.models import Alert
from command.tasks.models import ACTIVE_TASK_STATUSES, Task
from command.zones.ending import end_change
from command.zones.models import WarningZone
from command.zones.service import ZONES
from core import crud
from core.security import Principal
from core.validate import clean_line, clean_text

CLOSED_INCIDENT = ("resolved", "closed", "cancelled")
CANCELLABLE = ("reported", "verified")


@dataclass
class Outcome:
    alert_id: int
    thread_id: int
    action: str
    incident_ids: list[int] = field(default_factory=list)
    zone_ids: list[int] = field(default_factory=list)
    updated_incident_ids: list[int] = field(default_factory=list)
    updated_zone_ids: list[int] = field(default_factory=list)
    cancelled_incident_ids: list[int] = field(default_factory=list)
    ended_zone_ids: list[int] = field(default_factory=list)
    review_incident_ids: list[int] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Stored:
    """The alert row just inserted (what intake needs of it, without an ORM object)."""

    id: int
    sender: str
    identifier: str
    sent: datetime
    status: str
    msg_type: str
    drill: bool
    thread_id: int | None = None


class ThreadChanges:
    """Creates, updates and ends the incidents and zones of one alert's thread."""

    def __init__(
        self,
        session: Session,
        row: Stored,
        principal: Principal,
        topics: tuple[str, ...],
        drill: bool,
        closes_roads: bool,
        now: datetime,
        out: Outcome,
    ) -> None:
        self.session = session
        self.row = row
        self.principal = principal
        self.topics = topics
        self.drill = drill
        self.closes_roads = closes_roads
        self.now = now
        self.out = out

    # incidents

    def _incident_props(self, t: Target) -> dict[str, Any]:
        info = t.info
        text = "\n\n".join(p for p in (info.description, info.instruction) if p)
        props: dict[str, Any] = {
            # A warning system's text is shown on every screen: no bidi override or control
            # character may reorder or hide it (the raw alert keeps what was sent).
            "title": clean_line(info.headline or info.event)[:200],
            "type": t.type,
            "severity": t.severity,
            "description": clean_text(text)[:10_000] or None,
            "address": (clean_line(t.area.desc)[:300] or None) if t.area else None,
            "reported_by": clean_line(self.row.sender)[:120],
            "drill": self.drill,
            "alert_id": self.row.id,
        }
        if t.shape is None:
            props["needs_review"] = True
            codes = [] if t.area is None else t.area.geocodes
            shown = ", ".join(f"{g['valueName']} {g['value']}" for g in codes[:5])
            props["review_reason"] = "no usable location in the alert" + (
                f" (geocodes {shown})" if shown else ""
            )
        return props

    def incident_items(self, found: list[Target]) -> list[tuple[dict[str, Any], Geometry | None]]:
        return [
            ({**self._incident_props(t), "source": "alert", "status": "reported"}, t.shape)
            for t in found
        ]

    def _create_incidents(self, found: list[Target]) -> None:
        self.out.incident_ids += crud.create_many(
            self.session, INCIDENTS, self.incident_items(found), principal=self.principal,
            topics=self.topics,
        )  # fmt: skip

    # zones

    def _zone_props(self, t: Target) -> dict[str, Any]:
        info = t.info
        starts = info.onset or info.effective or self.row.sent
        ends = info.expires
        if ends is not None and starts > ends:
            starts = ends
        name = clean_line(t.area.desc if t.area and t.area.desc else info.headline or info.event)
        return {
            "name": name[:200], "kind": t.type, "severity": t.severity, "status": "active",
            "blocks_roads": self.closes_roads, "drill": self.drill, "alert_id": self.row.id,
            "starts_at": starts, "ends_at": ends,
        }  # fmt: skip

    def zone_items(self, found: list[Target]) -> list[tuple[dict[str, Any], Geometry | None]]:
        return [(self._zone_props(t), t.shape) for t in found if t.is_zone]

    def _create_zones(self, found: list[Target]) -> None:
        self.out.zone_ids += crud.create_many(
            self.session, ZONES, self.zone_items(found), principal=self.principal,
            topics=self.topics,
        )  # fmt: skip

    def create(self, found: list[Target]) -> None:
        self._create_incidents(found)
        self._create_zones(found)

    # the thread

    def _thread_alerts(self, threads: list[int]) -> Any:
        return select(Alert.id).where(Alert.thread_id.in_(threads), Alert.id != self.row.id)

    def _open_incidents(self, threads: list[int]) -> list[Incident]:
        stmt = (
            select(Incident)
            .where(
                Incident.alert_id.in_(self._thread_alerts(threads)),
                Incident.status.not_in(CLOSED_INCIDENT),
            )
            .order_by(Incident.id)
            .with_for_update()
            .execution_options(populate_existing=True)  # as locked, not as last loaded
        )
        return list(self.session.scalars(stmt))

    def _active_zones(self, threads: list[int]) -> list[WarningZone]:
        stmt = (
            select(WarningZone)
            .where(
                WarningZone.alert_id.in_(self._thread_alerts(threads)),
                WarningZone.status == "active",
            )
            .order_by(WarningZone.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return list(self.session.scalars(stmt))

    def _flag(self, incident: Incident, reason: str) -> crud.Change:
        self.out.review_incident_ids.append(incident.id)
        return crud.Change(
            incident, {"needs_review": True, "review_reason": reason[:1000]},
            action="incident.flagged",
        )  # fmt: skip

    def _end_zone(self, zone: WarningZone, why: str) -> crud.Change:
        self.out.ended_zone_ids.append(zone.id)
        return end_change(zone, note=why, now=self.now)

    def _apply(self, kind: crud.FeatureKind, changes: list[crud.Change]) -> None:
        crud.update_many_locked(
            self.session, kind, changes, principal=self.principal, topics=self.topics
        )

    def update(self, threads: list[int], found: list[Target]) -> None:
        self.out.action = "updated"
        incidents = self._open_incidents(threads)
        self._create_incidents(found[len(incidents) :])
        changes = []
        for incident, t in zip(incidents, found, strict=False):
            props = self._incident_props(t)
            if t.shape is not None:
                props.update(needs_review=False, review_reason=None)
            changes.append(crud.Change(incident, props, t.shape, action="incident.updated"))
            self.out.updated_incident_ids.append(incident.id)
        for incident in incidents[len(found) :]:
            changes.append(self._flag(incident, f"no longer named by alert {self.row.identifier}"))
        self._apply(INCIDENTS, changes)
        zones = self._active_zones(threads)
        shaped = [t for t in found if t.is_zone]
        self._create_zones(shaped[len(zones) :])
        changes = []
        for zone, t in zip(zones, shaped, strict=False):
            changes.append(crud.Change(zone, self._zone_props(t), t.shape))
            self.out.updated_zone_ids.append(zone.id)
        for zone in zones[len(shaped) :]:
            changes.append(self._end_zone(zone, f"not in update {self.row.identifier}"))
        self._apply(ZONES, changes)

    def cancel(self, threads: list[int]) -> None:
        self.out.action = "cancelled"
        self._apply(
            ZONES,
            [self._end_zone(z, f"cancelled by {self.row.identifier}")
             for z in self._active_zones(threads)],
        )  # fmt: skip
        incidents = self._open_incidents(threads)
        busy = set(
            self.session.scalars(
                select(Task.incident_id).distinct().where(
                    Task.incident_id.in_([i.id for i in incidents]),
                    Task.status.in_(ACTIVE_TASK_STATUSES),
                )
            )
        ) if incidents else set()  # fmt: skip
        changes = []
        for incident in incidents:
            if incident.status in CANCELLABLE and incident.id not in busy:
                note = f"alert cancelled by the sender ({self.row.identifier})"
                changes.append(move_change(incident, "cancelled", note=note))
                self.out.cancelled_incident_ids.append(incident.id)
            else:
                changes.append(self._flag(
                    incident,
                    f"the alert was cancelled by the sender ({self.row.identifier}) while "
                    "units are assigned: decide whether to stand them down",
                ))  # fmt: skip
        self._apply(INCIDENTS, changes)
