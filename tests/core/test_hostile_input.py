"""Shared input types and geometry checks against hostile input (pure: no database)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from command.auth.schemas import TokenRequest
from command.incidents.schemas import IncidentProps
from command.tasks.schemas import DispatchRequest
from command.zones.schemas import ZoneProps
from core.validate import (
    MAX_ID,
    MULTI_LINE_PATTERN,
    ONE_LINE_PATTERN,
    Id,
    Line,
    MultiLine,
    check_recent,
    check_ref,
    clean_line,
    clean_text,
    unstorable,
)
from gis.features import Strict
from gis.geojson import MAX_VERTICES, GeometryError, parse_geometry
from resources.schemas import PositionReport

AREAS = ("Point", "Polygon", "MultiPolygon")
SQUARE = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]


class Text(BaseModel):
    line: Line | None = None
    multi: MultiLine | None = None
    id: Id | None = None


def refused(**fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Text(**fields)
    return str(info.value)


# --- text ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "char",
    [
        "\x00",
        "\x01",
        "\x07",
        "\t",
        "\n",
        "\r",
        "\x1b",
        "\x7f",
        "\x85",
        "\x9f",
        "\u200b",
        "\u2028",
        "\u2029",
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2060",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u206f",
        "\ufeff",
        "\ufff9",
        chr(0xD800),  # lone surrogates
        chr(0xDFFF),
    ],
)
def test_one_line_text_refuses_controls_bidi_and_invisibles(char):
    message = refused(line=f"ab{char}cd")
    assert f"U+{ord(char):04X}" in message
    assert "at position 2" in message


@pytest.mark.parametrize("char", ["\t", "\n"])
def test_multi_line_text_keeps_tab_and_newline(char):
    assert Text(multi=f"ab{char}cd").multi == f"ab{char}cd"


@pytest.mark.parametrize("char", ["\x00", "\r", "\x0b", "\x0c", "\x1b", "\u202e", "\u2029"])
def test_multi_line_text_refuses_the_other_controls(char):
    assert f"U+{ord(char):04X}" in refused(multi=f"ab{char}cd")


@pytest.mark.parametrize(
    "text",
    [
        "火灾 — 3号楼",
        "👨\u200d🚒 on scene",  # ZWJ joins the firefighter emoji
        "می\u200cخواهم",  # ZWNJ is spelling in Persian
        "שלום \u200f(1)",  # RLM marks one neutral character's direction
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # flag: tag characters
        "é and e\u0301",
        "",
    ],
)
def test_ordinary_text_of_any_script_is_kept(text):
    assert Text(line=text, multi=text).line == text


ANY_TEXT = st.text(st.characters(codec=None), max_size=30)


@given(ANY_TEXT)
def test_the_openapi_pattern_says_what_the_validator_does(text):
    """The pattern in the schema and the check agree on every valid-Unicode string."""
    for field, pattern in (("line", ONE_LINE_PATTERN), ("multi", MULTI_LINE_PATTERN)):
        try:
            Text(**{field: text})
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == (re.fullmatch(pattern, text) is not None), repr(text)


def test_patterns_appear_in_the_json_schema():
    schema = IncidentProps.model_json_schema()["properties"]
    assert schema["title"]["pattern"] == ONE_LINE_PATTERN
    description = schema["description"]["anyOf"][0]
    assert description["pattern"] == MULTI_LINE_PATTERN
    assert description["maxLength"] == 10_000


def test_incident_title_and_login_name_use_the_shared_types():
    base = {"title": "t", "type": "fire"}
    with pytest.raises(ValidationError, match="U\\+202E"):
        IncidentProps(**{**base, "title": "evil\u202etxt.exe"})
    with pytest.raises(ValidationError, match="U\\+0000"):
        TokenRequest(username="admin\x00", password="x")
    # A password keeps any character a person can type, control characters included.
    assert TokenRequest(username="admin", password="p\u202e\t w").password == "p\u202e\t w"


# --- ids ------------------------------------------------------------------------------------
def test_ids_stop_at_bigint():
    assert Text(id=MAX_ID).id == MAX_ID
    assert "less than or equal to" in refused(id=MAX_ID + 1)
    assert "greater than or equal to 1" in refused(id=0)
    with pytest.raises(ValidationError):
        DispatchRequest(unit_ids=[1, 2**63])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("shelter:1", True),
        (f"incident:{MAX_ID}", True),
        (f"incident:{MAX_ID + 1}", False),
        ("shelter:99999999999999999999999", False),
        ("shelter:0", False),
        ("shelter:", False),
        ("station:1", False),
        ("shelter:١٢", False),  # Arabic-Indic digits are digits to str.isdigit
        ("shelter:1" + "0" * 5000, False),  # past int()'s digit limit: no ValueError leaks
    ],
)
def test_kind_and_id_references(value, ok):
    if ok:
        assert check_ref(value, ("shelter", "incident")) == value
    else:
        with pytest.raises(ValueError, match=r"must be|between"):
            check_ref(value, ("shelter", "incident"))


# --- numbers ---------------------------------------------------------------------------------
class Number(Strict):
    x: float


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_request_bodies_refuse_non_finite_numbers(raw):
    with pytest.raises(ValidationError, match="finite"):
        Number.model_validate(json.loads(f'{{"x": {raw}}}'))


def test_request_bodies_refuse_integers_too_large_for_a_float():
    with pytest.raises(ValidationError):
        Number.model_validate(json.loads('{"x": 1' + "0" * 400 + "}"))


def test_signed_zero_and_tiny_numbers_pass():
    assert str(Number.model_validate(json.loads('{"x": -0.0}')).x) == "-0.0"
    assert Number.model_validate(json.loads('{"x": 5e-324}')).x == 5e-324


# --- times -----------------------------------------------------------------------------------
NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (NOW, True),
        (NOW - timedelta(days=6, hours=23), True),
        (NOW + timedelta(minutes=4), True),
        (NOW - timedelta(days=7, seconds=1), False),
        (NOW + timedelta(minutes=5, seconds=1), False),
        (datetime(1, 1, 1, tzinfo=UTC), False),
        (datetime.fromisoformat("0001-01-01T00:00:00+14:00"), False),
        (datetime.fromisoformat("9999-12-31T23:59:59-14:00"), False),
        (datetime(2026, 7, 1, 8, 0), False),  # naive
    ],
)
def test_recent_window(value, ok):
    def check():
        return check_recent(value, max_age_s=7 * 86_400, max_future_s=300, now=NOW)

    if ok:
        assert check() == value
    else:
        with pytest.raises(ValueError, match=r"past|future|between|offset"):
            check()


def test_position_schema_bounds_recorded_at_by_the_settings():
    now = datetime.now(UTC)
    assert PositionReport(lon=1, lat=2, recorded_at=now).recorded_at == now
    for bad in ("0001-01-01T00:00:00Z", (now - timedelta(days=8)).isoformat()):
        with pytest.raises(ValidationError, match="recorded_at"):
            PositionReport.model_validate({"lon": 1, "lat": 2, "recorded_at": bad})


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1999-12-31T23:00:00Z"]
)
def test_zone_times_are_aware_and_in_sane_years(value):
    with pytest.raises(ValidationError, match="between 2000-01-01 and 2100-01-01"):
        ZoneProps(name="z", kind="flood", starts_at=value)
    assert ZoneProps(name="z", kind="flood", ends_at="2099-01-01T00:00:00Z").ends_at


# --- geometry ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ({"type": "Polygon", "coordinates": [24.9, 60.1]}, "a Polygon has"),
        ({"type": "Polygon", "coordinates": [[24.9, 60.1]]}, "a Polygon has"),
        ({"type": "Polygon", "coordinates": [SQUARE]}, "a Polygon has"),
        ({"type": "MultiPolygon", "coordinates": SQUARE}, "a MultiPolygon has"),
        ({"type": "MultiPolygon", "coordinates": [24.9, 60.1]}, "a MultiPolygon has"),
        ({"type": "Point", "coordinates": [[24.9, 60.1]]}, "a Point has"),
        ({"type": "Point", "coordinates": {"lon": 1, "lat": 2}}, "a Point has"),
        ({"type": "Polygon", "coordinates": [[[[[[[[[]]]]]]]]]}, "a Polygon has"),
        ({"type": "Point", "coordinates": [10**400, 60]}, "finite"),
        ({"type": "Point", "coordinates": [24.9, 60.1, 10**400]}, "finite"),
        ({"type": "Point", "coordinates": [24.9, 60.1, float("nan")]}, "finite"),
        ({"type": "Point", "coordinates": [None, 60]}, "numbers"),
        ({"type": "Polygon", "coordinates": [[]]}, "four positions"),
        ({"type": "MultiPolygon", "coordinates": [[]]}, "at least one ring"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "four positions"),
        ({"type": ["Polygon"], "coordinates": []}, "geometry type must be one of"),
        ({"type": "GeometryCollection", "geometries": []}, "geometry type must be one of"),
    ],
)
def test_wrongly_nested_or_unreadable_coordinates_are_refused(geometry, message):
    with pytest.raises(GeometryError, match=re.escape(message)):
        parse_geometry(geometry, allowed=(*AREAS, "GeometryCollection"))


def test_deep_nesting_is_refused_without_recursing():
    deep: Any = []
    for _ in range(50_000):  # far past Python's recursion limit
        deep = [deep]
    with pytest.raises(GeometryError, match="a Polygon has"):
        parse_geometry({"type": "Polygon", "coordinates": deep}, allowed=AREAS)


def test_too_many_rings_count_as_vertices():
    rings = SQUARE * (MAX_VERTICES // 5 + 1)
    with pytest.raises(GeometryError, match="more than 100000 vertices"):
        parse_geometry({"type": "Polygon", "coordinates": rings}, allowed=AREAS)


def test_altitude_is_checked_then_dropped():
    geom = parse_geometry({"type": "Point", "coordinates": [24.9, 60.1, 12.5]}, allowed=AREAS)
    assert not geom.has_z
    assert (geom.x, geom.y) == (24.9, 60.1)
    ring = [[0, 0, 1], [1, 0], [1, 1, 3], [0, 1], [0, 0, 9]]  # mixed 2-D and 3-D positions
    area = parse_geometry({"type": "Polygon", "coordinates": [ring]}, allowed=AREAS)
    assert not area.has_z and area.area == 1.0


def test_signed_zero_is_legal():
    geom = parse_geometry({"type": "Point", "coordinates": [-0.0, 60.1]}, allowed=AREAS)
    assert geom.x == 0.0


# --- a machine's text (CAP) ------------------------------------------------------------------
def test_machine_text_is_defused_not_refused():
    assert (
        clean_line("Flood\u202e warning\n\tnorth\x00 bank")
        == "Flood\ufffd warning  north\ufffd bank"
    )
    assert clean_text("line 1\r\nline 2\n\tend\u2066") == "line 1\nline 2\n\tend\ufffd"
    assert clean_line("火灾 👨\u200d🚒") == "火灾 👨\u200d🚒"
    assert unstorable("a\x00b") == "contains U+0000 (control character)"
    assert unstorable(chr(0xD800)).startswith("contains U+D800 (a lone surrogate")
    assert unstorable("a\u202eb") is None  # storable: refused or defused elsewhere
