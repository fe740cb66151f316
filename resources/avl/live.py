"""The live map's positions: coalesced, at most one per unit per second, in batches.

The writer only moves units (``unit.position_at``). About four times a second the live
jobs call :func:`publish_positions`: one statement takes every unit whose newest fix has
not been shown and whose last showing is a second old or more, marks it shown, and the
units go out as one ``unit.positions`` event per topic (``situation``, or a tabletop
drill's ``drill:<id>`` for its stand-ins), in chunks of :data:`CHUNK`. Rows another
process is publishing are skipped (``SKIP LOCKED``), so with several server processes a
unit is still shown at most once a second. The events are not audited: telemetry.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.changes import SITUATION, publish_event

EVERY_S = 1.0  # at most one update per unit per second
CHUNK = 1000  # units per event
EVENT = "unit.positions"

_DUE = text(
    """
    WITH due AS (
        SELECT id FROM unit
        WHERE position_at IS NOT NULL
          AND (position_sent_at IS NULL OR position_at > position_sent_at)
          AND (position_sent_wall IS NULL
               OR position_sent_wall <= clock_timestamp() - make_interval(secs => :every))
        ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE unit u SET position_sent_at = u.position_at, position_sent_wall = clock_timestamp()
    FROM due WHERE u.id = due.id
    RETURNING u.id, u.callsign, u.status, ST_X(u.geom), ST_Y(u.geom), u.position_at,
              u.position_speed_mps, u.position_heading_deg, u.drill_id
    """
)


def publish_positions(session: Session, *, limit: int = 20_000) -> int:
    """Publish the units due an update (module doc); returns how many. The caller commits."""
    rows = session.execute(_DUE, {"every": EVERY_S, "limit": limit}).all()
    by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for uid, callsign, status, lon, lat, at, speed, heading, drill_id in sorted(rows):
        topic = SITUATION if drill_id is None else f"drill:{drill_id}"
        by_topic[topic].append(
            {
                "unit_id": uid,
                "callsign": callsign,
                "status": status,
                "lon": round(lon, 7),
                "lat": round(lat, 7),
                "recorded_at": at.isoformat(),
                "speed_mps": speed,
                "heading_deg": heading,
            }
        )
    for topic, entries in sorted(by_topic.items()):
        for k in range(0, len(entries), CHUNK):
            publish_event(
                session,
                action=EVENT,
                entity="unit",
                payload={"positions": entries[k : k + CHUNK]},
                topics=(topic,),
            )
    return len(rows)
