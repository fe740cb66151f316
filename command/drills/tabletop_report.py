"""A tabletop drill's after-action report (stored in ``drill.report`` when it ends): the live
KPI code over the drill's own incidents, and what the system recommended next to what the
dispatchers chose (``dispatch_decision`` rows of the drill's incidents).

Times in the KPIs are wall-clock seconds (people dispatched in real time); the inject
times are on the drill's simulated clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from command.drills.models import Drill
from command.incidents.models import Incident
from command.kpis import service as kpis
from command.tasks.models import DispatchDecision
from core.config import get_settings
from dispatch.targets import TargetTable
from drills import scenario as sc
from drills.world import target_table
from resources.models import Unit


def targets_of(drill: Drill) -> TargetTable:
    """The scenario's targets when it sets any, else this installation's."""
    try:
        scenario = sc.parse(drill.scenario)
    except sc.ScenarioError:
        scenario = None
    t = scenario.targets if scenario is not None else None
    if t is not None and (t.response_s or t.dispatch_s is not None or t.travel_s or t.by_type):
        return target_table(scenario)  # type: ignore[arg-type]
    return kpis.target_table(get_settings())


def decisions(session: Session, drill_id: int) -> dict[str, Any]:
    """Recommended versus chosen, per dispatch of the drill's incidents, in order: the
    count, how many followed the recommendation (chose exactly the recommended units),
    the share of those judged (a dispatch made without advice is not judged)."""
    rows = session.execute(
        select(DispatchDecision, Incident.title)
        .join(Incident, Incident.id == DispatchDecision.incident_id)
        .where(Incident.drill_id == drill_id)
        .order_by(DispatchDecision.id)
    ).all()
    ids = {i for d, _ in rows for i in d.chosen_unit_ids}
    ids |= {r["unit_id"] for d, _ in rows for r in d.recommended or ()}
    callsign = dict(session.execute(select(Unit.id, Unit.callsign).where(Unit.id.in_(ids))).all())
    items = [
        {
            "incident": d.incident_id,
            "title": title,
            "actor": d.actor,
            "at": d.created_at.isoformat(),
            "recommended": _callsigns(callsign, d.recommended),
            "chosen": [callsign.get(u, str(u)) for u in d.chosen_unit_ids],
            "followed": d.followed,
        }
        for d, title in rows
    ]
    judged = [i for i in items if i["followed"] is not None]
    followed = sum(1 for i in judged if i["followed"])
    return {
        "dispatches": len(items),
        "judged": len(judged),
        "followed": followed,
        "followed_share": followed / len(judged) if judged else None,
        "items": items,
    }


def _callsigns(callsign: dict[int, str], recommended: list[dict[str, Any]] | None) -> Any:
    if recommended is None:
        return None  # no advice could be computed (no road network, say)
    return [callsign.get(r["unit_id"], str(r["unit_id"])) for r in recommended]


def _design_kpis(figures: dict[str, Any]) -> dict[str, Any]:
    response = figures["times"]["reported_to_on_scene"]
    return {
        "incidents": figures["incidents"]["total"],
        "response_s": {f"p{q}": response[f"p{q}_s"] for q in (50, 90, 95)},
        "within_target": figures["within_target"]["share"],
    }


def build_report(
    session: Session, drill: Drill, *, clock_s: float, now: datetime
) -> dict[str, Any]:
    """The report of a tabletop drill that has just ended (``drill.report``)."""
    state = (drill.replay or {}).get("tabletop") or {"injects": [], "done": 0}
    table = targets_of(drill)
    started = drill.started_at or now
    figures = kpis.incident_kpis(
        session, since=started - timedelta(seconds=1), until=now + timedelta(seconds=1),
        drill=True, drill_id=drill.id, table=table, as_of=now,
    )  # fmt: skip
    standins = session.scalar(select(func.count()).where(Unit.drill_id == drill.id)) or 0
    return {
        "mode": "tabletop",
        "drill_id": drill.id,
        "scenario": drill.name,
        "seed": (drill.scenario or {}).get("seed"),
        "status": drill.status,
        "speed": drill.speed,
        "started_at": started.isoformat(),
        "finished_at": now.isoformat(),
        "clock_s": round(clock_s, 1),
        "duration_s": (drill.scenario or {}).get("duration_s"),
        "injects": {
            "total": len(state["injects"]),
            "done": int(state["done"]),
            "pending": len(state["injects"]) - int(state["done"]),
        },
        "standin_units": int(standins),
        "targets": kpis.targets_read(table),
        "kpis": figures,
        # The run reports' shape (DESIGN "Drills"), the dispatchers as the one policy.
        "policies": {"dispatchers": {"kpis": _design_kpis(figures)}},
        "recommended_vs_chosen": decisions(session, drill.id),
    }
