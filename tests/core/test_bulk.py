"""core.bulk: rows through jsonb_to_recordset are stored exactly as the ORM stores them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from geoalchemy2.shape import to_shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, Polygon
from sqlalchemy import select, text

from command.incidents.models import Incident
from command.intake.models import Alert, AlertArea, AlertInfo
from command.zones.models import WarningZone
from core import bulk

ALERT = Alert.__table__
INCIDENT = Incident.__table__

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)


def _alert_row(identifier: str, **extra):
    return dict(
        identifier=identifier, sender="s@example.org",
        sent=datetime(2026, 12, 4, 8, 0, tzinfo=timezone(timedelta(hours=8))),
        status="Actual", msg_type="Alert", scope="Public", version="1.2", source=None,
        note=None, references=None, raw=b"<alert>\x00\xff</alert>",
        content_type="application/cap+xml", received_by="apikey:k1", **extra,
    )  # fmt: skip


def test_insert_stores_what_the_orm_would(session):
    conn = session.connection()
    (row,) = bulk.insert(
        conn, ALERT, [_alert_row("B-1", referenced=[{"sender": "a", "identifier": "x"}])],
        returning=("identifier", "sent", "codes"),
    )  # fmt: skip
    stored = session.get(Alert, row.id)
    assert stored.raw == b"<alert>\x00\xff</alert>"  # bytea, byte for byte
    assert stored.sent == datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
    assert stored.referenced == [{"sender": "a", "identifier": "x"}]
    # Python-side defaults applied as the ORM applies them:
    assert (stored.codes, stored.warnings, stored.result, stored.drill) == ([], [], {}, False)
    assert (row.identifier, row.sent, row.codes) == ("B-1", stored.sent, [])


def test_geometry_and_computed_columns(session):
    conn = session.connection()
    square = Polygon([(113.3, 23.1), (113.4, 23.1), (113.4, 23.2), (113.3, 23.2)])
    a, b = bulk.insert(
        conn, INCIDENT,
        [dict(title="面", type="flood", geom=square), dict(title="点", type="fire",
                                                          geom=Point(113.35, 23.15))],
        returning=("title", "geom", "location", "severity"),
    )  # fmt: skip
    assert (a.title, b.title) == ("面", "点")
    assert to_shape(a.geom).equals(square) and a.geom.srid == 4326
    assert to_shape(a.location).within(square)  # the computed column, from the database
    assert to_shape(b.location).equals(Point(113.35, 23.15))
    assert a.severity == b.severity == "moderate"


def test_returning_follows_row_order_across_column_sets(session):
    conn = session.connection()
    rows = [
        dict(title=f"t{n}", type="fire", **({"address": "x"} if n % 3 == 0 else {}))
        for n in range(10)
    ]
    got = bulk.insert(conn, INCIDENT, rows, returning=("title", "address"))
    assert [r.title for r in got] == [f"t{n}" for n in range(10)]
    assert [r.address for r in got] == ["x" if n % 3 == 0 else None for n in range(10)]


def test_on_conflict_skips_and_returns_only_inserted(session):
    conn = session.connection()
    bulk.insert(conn, ALERT, [_alert_row("C-1")])
    got = bulk.insert(
        conn, ALERT, [_alert_row("C-0"), _alert_row("C-1"), _alert_row("C-2")],
        returning=("identifier",), on_conflict="uq_alert_key",
    )  # fmt: skip
    assert [r.identifier for r in got] == ["C-0", "C-2"]


def test_raw_json_is_spliced_as_json(session):
    conn = session.connection()
    (row,) = bulk.insert(
        conn, ALERT, [_alert_row("R-1", result=bulk.RawJSON('{"a":[1,2],"b":"中"}'))],
        returning=("result",),
    )  # fmt: skip
    assert row.result == {"a": [1, 2], "b": "中"}


def test_rows_with_and_without_raw_json_go_in_together(session):
    """A batch where only some rows carry RawJSON (staged changes: a payload or none)."""
    conn = session.connection()
    got = bulk.insert(
        conn,
        ALERT,
        [_alert_row("M-1", result=bulk.RawJSON('{"a":1}')), _alert_row("M-2", result=None)],
        returning=("result",),
    )
    assert [r.result for r in got] == [{"a": 1}, None]


def test_update_sets_columns_by_key(session):
    conn = session.connection()
    a, b = bulk.insert(conn, ALERT, [_alert_row("U-1"), _alert_row("U-2")], returning=("id",))
    got = bulk.update(
        conn, ALERT,
        [{"id": b.id, "thread_id": a.id, "result": {"x": 2}},
         {"id": a.id, "thread_id": a.id, "result": {"x": 1}},
         {"id": -1, "thread_id": a.id, "result": {}}],
        returning=("thread_id",),
    )  # fmt: skip
    assert [(r.id, r.thread_id) for r in got] == [(b.id, a.id), (a.id, a.id)]
    got = session.execute(
        select(Alert.id, Alert.thread_id, Alert.result).where(Alert.id.in_((a.id, b.id)))
    ).all()
    assert sorted(got) == sorted([(a.id, a.id, {"x": 1}), (b.id, a.id, {"x": 2})])


def test_bad_values_are_refused_before_the_database():
    with pytest.raises(ValueError):
        bulk.encode_rows([{"x": float("nan")}])
    with pytest.raises(TypeError, match="cannot store object"):
        bulk.encode_rows([{"x": object()}])


_examples: list[None] = []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(st.tuples(_text, _text), min_size=1, max_size=5),
    alt=st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
)
def test_text_and_numbers_round_trip(session, texts, alt):
    """Any text (quotes, backslashes, CJK, control characters) and float stored as given."""
    conn = session.connection()
    _examples.append(None)
    (alert,) = bulk.insert(conn, ALERT, [_alert_row(f"H-{len(_examples)}")], returning=("id",))
    (info,) = bulk.insert(
        conn, AlertInfo.__table__,
        [dict(alert_id=alert.id, position=1, language="zh-CN", categories=["Met"],
              event=texts[0][0], urgency="Immediate", severity="Severe", certainty="Observed",
              headline=texts[0][1], parameters=[{"valueName": a, "value": b} for a, b in texts])],
        returning=("event", "headline", "parameters"),
    )  # fmt: skip
    assert (info.event, info.headline) == texts[0]
    assert info.parameters == [{"valueName": a, "value": b} for a, b in texts]
    (area,) = bulk.insert(
        conn, AlertArea.__table__,
        [dict(alert_id=alert.id, info_id=info.id, position=1, area_desc=texts[-1][0],
              altitude=alt, geom=None)],
        returning=("area_desc", "altitude", "geom"),
    )  # fmt: skip
    assert (area.area_desc, area.altitude, area.geom) == (texts[-1][0], alt, None)


def test_zone_check_constraints_still_apply(session):
    """A row the database refuses is refused as from the ORM (CHECK on the geometry)."""
    from sqlalchemy.exc import IntegrityError

    conn = session.connection()
    bow = Polygon([(113.3, 23.1), (113.4, 23.2), (113.4, 23.1), (113.3, 23.2)])  # self-crossing
    with session.begin_nested(), pytest.raises(IntegrityError, match="geom_valid"):
        bulk.insert(conn, WarningZone.__table__, [dict(name="z", kind="flood", geom=bow)])


def test_update_sets_onupdate_columns(session):
    conn = session.connection()
    (row,) = bulk.insert(conn, INCIDENT, [dict(title="t", type="fire")], returning=("updated_at",))
    old = datetime(2020, 1, 1, tzinfo=UTC)
    bulk.update(conn, INCIDENT, [{"id": row.id, "updated_at": old}])
    (after,) = bulk.update(
        conn, INCIDENT, [{"id": row.id, "title": "u"}], returning=("title", "updated_at")
    )
    now = session.scalar(text("SELECT now()"))
    assert (after.title, after.updated_at) == ("u", now)


def test_none_in_a_json_column_is_json_null_as_from_the_orm(session):
    """The ORM stores None in a JSON column as JSON null (none_as_null off); so does bulk,
    whether given None or RawJSON("null") (an audit row's "before" of a creation)."""
    from core.audit import AuditEvent

    conn = session.connection()
    (a,) = bulk.insert(conn, ALERT, [_alert_row("N-1", result=None)], returning=("id",))
    bulk.insert(
        conn, AuditEvent.__table__,
        [dict(at=datetime(2026, 12, 4, tzinfo=UTC), actor="t", action="x.y", entity="x",
              entity_id=None, before=bulk.RawJSON("null"), after=bulk.RawJSON("{}"),
              prev_hash="0" * 64, hash="f" * 64)],
    )  # fmt: skip
    got = session.execute(
        text(
            "SELECT (SELECT jsonb_typeof(result) FROM alert WHERE id = :id), "
            "(SELECT jsonb_typeof(before) FROM audit_event WHERE hash = :h)"
        ),
        {"id": a.id, "h": "f" * 64},
    ).one()
    assert tuple(got) == ("null", "null")
    bulk.update(conn, ALERT, [{"id": a.id, "result": None}])
    kind = session.scalar(
        text("SELECT jsonb_typeof(result) FROM alert WHERE id = :id"), {"id": a.id}
    )
    assert kind == "null"
