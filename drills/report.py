"""Writing a run's results: report.json, report.html and events.csv (DESIGN "Drills").

``report.json`` is the same bytes for the same scenario and seed, wherever it ran, apart
from its ``timing`` key: keys sorted, floats rounded to 4 decimals, no file paths.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drills.runner import RunResult

EVENT_COLUMNS = ("policy", "replication", "t_s", "time", "kind", "incident", "unit", "callsign",
                 "station", "type", "severity", "lon", "lat", "response_s")  # fmt: skip


def clean(value: Any) -> Any:
    """JSON-ready: floats rounded to 4 decimals, nan and inf as null, tuples as lists."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(clean(report), sort_keys=True, ensure_ascii=False, indent=1) + "\n"


def event_rows(replay: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per event of a replay timeline, with the incident's and unit's details."""
    start = datetime.fromisoformat(replay["start"])
    incidents = replay["incidents"]
    units = replay["units"]
    rows = []
    for e in replay["events"]:
        inc = incidents[e["incident"]] if "incident" in e else None
        unit = units[e["unit"]] if "unit" in e else None
        rows.append(
            {
                "policy": replay["policy"],
                "replication": replay["replication"],
                "t_s": e["t"],
                "time": (start + timedelta(seconds=e["t"])).isoformat(),
                "kind": e["kind"],
                "incident": e.get("incident", ""),
                "unit": e.get("unit", ""),
                "callsign": unit["callsign"] if unit else "",
                "station": e.get("station", ""),
                "type": inc["type"] if inc else "",
                "severity": inc["severity"] if inc else "",
                "lon": inc["lon"] if inc else "",
                "lat": inc["lat"] if inc else "",
                "response_s": inc["response_s"]
                if inc and e["kind"] == "call" and inc["response_s"] is not None
                else "",
            }
        )
    return rows


def write(result: RunResult, out: Path) -> dict[str, Path]:
    """Write the three files into ``out`` (created); returns their paths."""
    from drills import html

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "html": out / "report.html", "csv": out / "events.csv"}
    paths["json"].write_text(dumps(result.report), encoding="utf-8")
    paths["html"].write_text(html.render(clean(result.report)), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=EVENT_COLUMNS)
        writer.writeheader()
        for replay in result.replays.values():
            writer.writerows(event_rows(replay))
    return paths
