"""The target arithmetic and its settings (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from command.kpis.service import target_table
from core.config import Settings
from dispatch.targets import Target, TargetTable, outcome, share, target_for

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
seconds = st.integers(min_value=1, max_value=86_400)


def test_defaults_follow_the_design():
    table = TargetTable()
    assert table.default == Target(dispatch_s=60, travel_s=480, response_s=540)
    assert table.for_type("fire") == Target(dispatch_s=60, travel_s=300, response_s=360)
    assert table.for_type("medical") == table.default
    assert table.overridden() == {"fire": Target(60, 300, 360)}


def test_settings_give_the_same_table():
    assert target_table(Settings()) == TargetTable()


@given(
    dispatch_s=seconds,
    travel_s=seconds,
    own=st.fixed_dictionaries(
        {}, optional={"dispatch_s": seconds, "travel_s": seconds, "response_s": seconds}
    ),
)
def test_response_is_the_sum_unless_set(dispatch_s, travel_s, own):
    table = TargetTable(dispatch_s=dispatch_s, travel_s=travel_s, by_type={"x": own})
    target = target_for("x", table)
    assert target.dispatch_s == own.get("dispatch_s", dispatch_s)
    assert target.travel_s == own.get("travel_s", travel_s)
    assert target.response_s == own.get("response_s", target.dispatch_s + target.travel_s)
    assert target_for("other", table) == Target(dispatch_s, travel_s, dispatch_s + travel_s)


@given(response_s=seconds, arrival_s=st.integers(0, 200_000), age_s=st.integers(0, 200_000))
def test_outcome(response_s, arrival_s, age_s):
    as_of = T0 + timedelta(seconds=age_s)
    arrived = outcome(
        reported_at=T0,
        on_scene_at=T0 + timedelta(seconds=arrival_s),
        response_s=response_s,
        as_of=as_of,
    )
    assert arrived == ("within" if arrival_s <= response_s else "missed")
    waiting = outcome(reported_at=T0, on_scene_at=None, response_s=response_s, as_of=as_of)
    assert waiting == ("missed" if age_s >= response_s else "pending")


def test_share():
    assert share(0, 0) is None
    assert share(3, 1) == 0.75


def test_target_by_type_from_json_env(monkeypatch):
    monkeypatch.setenv(
        "EMERGENCY_TARGET_BY_TYPE", '{"fire": {"travel_s": 240}, "medical": {"response_s": 480}}'
    )
    monkeypatch.setenv("EMERGENCY_TARGET_DISPATCH_S", "90")
    table = target_table(Settings())
    assert table.for_type("fire") == Target(90, 240, 330)
    assert table.for_type("medical") == Target(90, 480, 480)
    assert table.default == Target(90, 480, 570)


@pytest.mark.parametrize(
    "by_type",
    [{"fire": {"travel": 300}}, {"fire": {"travel_s": 0}}, {"": {"travel_s": 300}}],
)
def test_bad_targets_are_refused(by_type):
    with pytest.raises(ValidationError):
        Settings(target_by_type=by_type)
