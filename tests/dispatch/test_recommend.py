"""The pure recommender: fill a response plan with the fastest eligible units, explained."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from dispatch.assign import Need
from dispatch.recommend import Candidate, minutes, outstanding, recommend

FIRE = frozenset({"fire_suppression"})
LADDER = frozenset({"fire_suppression", "ladder"})
MED = frozenset({"medical_bls"})


def cand(uid, caps, eta, status="available", age=60.0, has_position=True):
    return Candidate(uid, f"U{uid}", status, caps, eta, eta * 10, age, has_position)


def test_fills_each_line_with_the_fastest_capable_units():
    plan = [Need("fire_suppression", 2), Need("ladder", 1), Need("medical_bls", 1)]
    units = [
        cand(1, FIRE, 300), cand(2, LADDER, 100), cand(3, FIRE, 200),
        cand(4, LADDER, 400), cand(5, MED, 250), cand(6, MED, 50),
    ]  # fmt: skip
    rec = recommend(plan, units)
    chosen = {r.unit_id: r.fills for r in rec.recommended}
    # Fire lines fill first (by plan order): 2 and 3; the ladder then comes from 4.
    assert chosen == {2: "fire_suppression", 3: "fire_suppression", 4: "ladder", 6: "medical_bls"}
    assert [r.rank for r in rec.ranked] == list(range(1, len(rec.ranked) + 1))
    assert rec.unmet == ()
    assert "fastest with ladder (1 of 1): 6 min 40 s" in next(
        r.why for r in rec.ranked if r.unit_id == 4
    )


def test_left_out_units_say_why():
    plan = [Need("fire_suppression", 1)]
    units = [
        cand(1, FIRE, 100, status="en_route"),
        cand(2, FIRE, 100, status="out_of_service"),
        cand(3, MED, 100),
        cand(4, FIRE, 100, age=3600),
        cand(5, FIRE, math.inf),
        cand(6, FIRE, 100, has_position=False),
        cand(7, FIRE, 500, status="returning", age=None),
    ]
    rec = recommend(plan, units, stale_after_s=900)
    reasons = {e.unit_id: e.reason for e in rec.excluded}
    assert reasons == {1: "busy", 2: "out_of_service", 3: "lacks_capability", 4: "position_stale",
                       5: "unreachable", 6: "no_position"}  # fmt: skip
    (only,) = rec.recommended
    assert only.unit_id == 7
    assert "returning" in only.why and "home station" in only.why


def test_shortfall_is_reported_not_hidden():
    rec = recommend([Need("hazmat", 2)], [cand(1, frozenset({"hazmat"}), 60)])
    assert [(s.capability, s.missing) for s in rec.unmet] == [("hazmat", 1)]


def test_without_a_plan_the_fastest_unit_is_proposed():
    rec = recommend([], [cand(1, FIRE, 300), cand(2, MED, 100)], limit=5)
    assert [r.unit_id for r in rec.recommended] == [2]
    assert [r.unit_id for r in rec.ranked] == [2, 1]


def test_minutes_reads_like_a_dispatcher():
    assert minutes(185) == "3 min 05 s"
    assert minutes(59.6) == "1 min 00 s"


caps = st.frozensets(st.sampled_from(["fire_suppression", "ladder", "medical_bls", "rescue"]),
                     min_size=1)  # fmt: skip
units_st = st.lists(
    st.tuples(caps, st.floats(0, 3600), st.sampled_from(["available", "returning", "on_scene"])),
    max_size=25,
)
plan_st = st.lists(
    st.tuples(st.sampled_from(["fire_suppression", "ladder", "medical_bls", "rescue"]),
              st.integers(1, 4)),
    max_size=4, unique_by=lambda t: t[0],
)  # fmt: skip


@given(units_st, plan_st)
def test_properties(raw_units, raw_plan):
    plan = [Need(c, n) for c, n in raw_plan]
    units = [cand(i, c, eta, status=s) for i, (c, eta, s) in enumerate(raw_units)]
    rec = recommend(plan, units)
    recommended = rec.recommended
    assert len({r.unit_id for r in recommended}) == len(recommended)  # no unit twice
    by_id = {u.unit_id: u for u in units}
    for r in recommended:
        assert by_id[r.unit_id].status in ("available", "returning")
        if plan:
            assert r.fills in by_id[r.unit_id].capabilities
    for line in plan:
        filled = sum(1 for r in recommended if r.fills == line.capability)
        missing = sum(s.missing for s in rec.unmet if s.capability == line.capability)
        assert filled + missing == line.count
        # No faster eligible unit with the capability was passed over for this line.
        if missing == 0 and filled:
            slowest = max(r.eta_s for r in recommended if r.fills == line.capability)
            spare = [u for u in units if u.status in ("available", "returning")
                     and line.capability in u.capabilities
                     and u.unit_id not in {r.unit_id for r in recommended}]  # fmt: skip
            assert all(u.eta_s >= slowest for u in spare)
    assert len(rec.ranked) + len(rec.excluded) <= len(units)


def test_units_already_sent_fill_their_lines_first():
    plan = [Need("fire_suppression", 2), Need("ladder", 1), Need("medical_bls", 1)]
    units = [cand(1, FIRE, 100), cand(2, LADDER, 200), cand(3, MED, 50), cand(4, FIRE, 300)]
    # A ladder engine already sent fills a fire_suppression line (the first it matches).
    rec = recommend(plan, units, sent=[LADDER])
    assert {r.unit_id: r.fills for r in rec.recommended} == {1: "fire_suppression", 2: "ladder",
                                                            3: "medical_bls"}  # fmt: skip
    assert recommend(plan, units, sent=[FIRE, FIRE, LADDER, MED]).recommended == ()
    # No plan: the fastest unit, unless one is already on its way.
    assert [r.unit_id for r in recommend([], units).recommended] == [3]
    assert recommend([], units, sent=[MED]).recommended == ()


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 3)), max_size=4),
    st.lists(st.frozensets(st.sampled_from(["a", "b", "c", "d"])), max_size=8),
)
def test_outstanding_never_grows_and_counts_each_sent_unit_once(lines, sent):
    plan = [Need(c, n) for c, n in lines]
    left = outstanding(plan, sent)
    total = sum(n.count for n in plan)
    remaining = sum(n.count for n in left)
    assert all(n.count > 0 for n in left)
    assert total - len(sent) <= remaining <= total
    # Each line keeps at most what it had, in plan order.
    assert all(any(n.capability == p.capability and n.count <= p.count for p in plan) for n in left)
