"""Evacuation solver: hand-made cases, brute force on tiny instances, properties."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.evacuate import (
    GROUPS,
    REASON_BEYOND_MAX_ETA,
    REASON_NO_CAPACITY,
    REASON_NO_SUITABLE,
    REASON_UNREACHABLE,
    EvacuationPlan,
    EvacuationProblem,
    ShelterSpace,
    Zone,
    solve,
)

INF = math.inf


def shelter(id_: int, free: int, *, accessible: bool = True, pets: bool = True) -> ShelterSpace:
    return ShelterSpace(id=id_, free=free, accessible=accessible, pets_allowed=pets)


def problem(
    zones: list[Zone], shelters: list[ShelterSpace], eta: list[list[float]], **kw: float
) -> EvacuationProblem:
    return EvacuationProblem(
        zones=tuple(zones),
        shelters=tuple(shelters),
        eta_s=np.array(eta, dtype=float).reshape(len(zones), len(shelters)),
        **kw,
    )


def by_shelter(plan: EvacuationPlan) -> dict[int, int]:
    out: Counter[int] = Counter()
    for p in plan.placements:
        out[p.shelter_id] += p.people
    return dict(out)


def sizes(zone: Zone) -> dict[str, int]:
    return {
        "general": zone.population - zone.needs_accessible - zone.with_pets,
        "accessible": zone.needs_accessible,
        "pets": zone.with_pets,
    }


def suits(s: ShelterSpace, group: str) -> bool:
    return group == "general" or (s.accessible if group == "accessible" else s.pets_allowed)


def reachable(prob: EvacuationProblem, zi: int, sj: int) -> bool:
    eta = float(prob.eta_s[zi, sj])
    return math.isfinite(eta) and eta <= prob.max_eta_s


# --- hand-made ----------------------------------------------------------------------


def test_nearest_shelter_used_until_full_then_next() -> None:
    prob = problem(
        [Zone("z", 10)], [shelter(1, 4), shelter(2, 100), shelter(3, 100)], [[300, 900, 600]]
    )
    plan = solve(prob)
    assert by_shelter(plan) == {1: 4, 3: 6}
    assert plan.unplaced == ()
    assert plan.cost == pytest.approx(4 * 300 + 6 * 600)
    assert plan.status == "optimal"
    assert [p.eta_s for p in plan.placements] == [300, 600]  # nearest first


def test_global_optimum_not_greedy() -> None:
    # Zone a alone at shelter 1 would be greedy-nearest for both; b has no alternative.
    prob = problem(
        [Zone("a", 2), Zone("b", 2)],
        [shelter(1, 2), shelter(2, 2)],
        [[100, 150], [100, INF]],
    )
    plan = solve(prob)
    placed = {(p.zone_id, p.shelter_id): p.people for p in plan.placements}
    assert placed == {("a", 2): 2, ("b", 1): 2}
    assert plan.cost == pytest.approx(2 * 150 + 2 * 100)


def test_accessible_people_only_in_accessible_shelters() -> None:
    prob = problem(
        [Zone("z", 5, needs_accessible=3)],
        [shelter(1, 10, accessible=False), shelter(2, 10, accessible=True)],
        [[60, 600]],
    )
    plan = solve(prob)
    groups = {(p.group, p.shelter_id): p.people for p in plan.placements}
    assert groups == {("general", 1): 2, ("accessible", 2): 3}


def test_accessible_places_kept_for_those_who_need_them() -> None:
    # Only 3 accessible places: the general people must go elsewhere, even if further.
    prob = problem(
        [Zone("z", 6, needs_accessible=3)],
        [shelter(1, 3, accessible=True), shelter(2, 10, accessible=False)],
        [[60, 6000]],
    )
    plan = solve(prob)
    groups = {(p.group, p.shelter_id): p.people for p in plan.placements}
    assert groups == {("accessible", 1): 3, ("general", 2): 3}
    assert plan.unplaced == ()


def test_pets_only_where_allowed() -> None:
    prob = problem(
        [Zone("z", 4, with_pets=4)],
        [shelter(1, 10, pets=False), shelter(2, 2, pets=True)],
        [[60, 600]],
    )
    plan = solve(prob)
    assert [(p.shelter_id, p.group, p.people) for p in plan.placements] == [(2, "pets", 2)]
    assert [(u.group, u.people, u.reason) for u in plan.unplaced] == [
        ("pets", 2, REASON_NO_CAPACITY)
    ]


def test_no_suitable_shelter_reason() -> None:
    prob = problem(
        [Zone("z", 5, needs_accessible=1, with_pets=2)],
        [shelter(1, 10, accessible=False, pets=False)],
        [[60]],
    )
    plan = solve(prob)
    assert by_shelter(plan) == {1: 2}
    assert {(u.group, u.people, u.reason) for u in plan.unplaced} == {
        ("accessible", 1, REASON_NO_SUITABLE["accessible"]),
        ("pets", 2, REASON_NO_SUITABLE["pets"]),
    }


def test_max_eta_respected() -> None:
    prob = problem(
        [Zone("near", 3), Zone("far", 3)],
        [shelter(1, 5), shelter(2, 10)],
        [[100, 1000], [1000, 2000]],
        max_eta_s=1000.0,
    )
    plan = solve(prob)
    assert all(p.eta_s <= 1000 for p in plan.placements)
    assert sum(p.people for p in plan.placements) == 6
    over = problem([Zone("z", 3)], [shelter(1, 10)], [[1001]], max_eta_s=1000.0)
    assert [(u.people, u.reason) for u in solve(over).unplaced] == [(3, REASON_BEYOND_MAX_ETA)]


def test_unreachable_reported() -> None:
    prob = problem([Zone("island", 7), Zone("town", 1)], [shelter(1, 100)], [[INF], [10]])
    plan = solve(prob)
    assert [(u.zone_id, u.group, u.people, u.reason) for u in plan.unplaced] == [
        ("island", "general", 7, REASON_UNREACHABLE)
    ]
    assert plan.placed == 1


def test_capacity_exhausted_reported_and_zero_free() -> None:
    prob = problem([Zone("z", 5)], [shelter(1, 0), shelter(2, 2)], [[10, 20]])
    plan = solve(prob)
    assert by_shelter(plan) == {2: 2}
    assert [(u.people, u.reason) for u in plan.unplaced] == [(3, REASON_NO_CAPACITY)]


def test_empty_problems() -> None:
    assert solve(problem([], [], [])).placements == ()
    plan = solve(problem([Zone("z", 4)], [], []))
    assert [(u.people, u.reason) for u in plan.unplaced] == [(4, REASON_UNREACHABLE)]
    plan = solve(problem([Zone("z", 0)], [shelter(1, 5)], [[1]]))
    assert plan.placements == () and plan.unplaced == () and plan.cost == 0


def test_large_numbers_do_not_overflow() -> None:
    prob = problem(
        [Zone("a", 10**9, needs_accessible=10**8), Zone("b", 10**9)],
        [shelter(1, 10**9), shelter(2, 2 * 10**9, accessible=False)],
        [[1e6, 2e6], [3e6, 1e5]],
    )
    plan = solve(prob)
    assert plan.placed == 2 * 10**9
    assert by_shelter(plan) == {1: 10**9, 2: 10**9}


@pytest.mark.parametrize(
    ("zones", "eta", "kw", "match"),
    [
        ([Zone("z", 1)], [[1, 2]], {}, "shape"),
        ([Zone("z", -1)], [[1]], {}, "population"),
        ([Zone("z", 2, needs_accessible=-1)], [[1]], {}, "needs_accessible"),
        ([Zone("z", 2, needs_accessible=2, with_pets=1)], [[1]], {}, "exceeds population"),
        ([Zone("z", 1)], [[-1]], {}, "negative"),
        ([Zone("z", 1)], [[math.nan]], {}, "NaN"),
        ([Zone("z", 1), Zone("z", 1)], [[1], [1]], {}, "zone ids"),
        ([Zone("z", 1)], [[1]], {"max_eta_s": -1.0}, "max_eta_s"),
    ],
)
def test_invalid_input_raises(
    zones: list[Zone], eta: list[list[float]], kw: dict[str, float], match: str
) -> None:
    prob = EvacuationProblem(
        zones=tuple(zones), shelters=(shelter(1, 1),), eta_s=np.array(eta, dtype=float), **kw
    )
    with pytest.raises(ValueError, match=match):
        solve(prob)


def test_invalid_shelter_and_time_limit_raise() -> None:
    with pytest.raises(ValueError, match="free"):
        solve(problem([Zone("z", 1)], [shelter(1, -1)], [[1]]))
    with pytest.raises(ValueError, match="shelter ids"):
        solve(problem([Zone("z", 1)], [shelter(1, 1), shelter(1, 1)], [[1, 1]]))
    with pytest.raises(ValueError, match="time_limit_s"):
        solve(problem([Zone("z", 1)], [shelter(1, 1)], [[1]]), time_limit_s=0)


def test_deterministic() -> None:
    prob = problem([Zone("a", 5, 1, 1), Zone("b", 5)], [shelter(1, 4), shelter(2, 4)], [[1, 1]] * 2)
    assert solve(prob, seed=1).placements == solve(prob, seed=2).placements


# --- brute force ----------------------------------------------------------------------


def brute_force(prob: EvacuationProblem) -> tuple[int, float]:
    """Best (placed, cost) over every integer split of every (zone, group)."""
    items = [(zi, g, n) for zi, z in enumerate(prob.zones) for g, n in sizes(z).items() if n > 0]
    options = [
        [sj for sj, s in enumerate(prob.shelters) if suits(s, g) and reachable(prob, zi, sj)]
        for zi, g, _ in items
    ]
    best = (0, 0.0)

    def splits(n: int, k: int, caps: list[int]) -> list[list[int]]:
        if k == 0:
            return [[]]
        return [
            [a, *rest]
            for a in range(min(n, caps[0]) + 1)
            for rest in splits(n - a, k - 1, caps[1:])
        ]

    def go(i: int, free: list[int], placed: int, cost: float) -> None:
        nonlocal best
        if i == len(items):
            if placed > best[0] or (placed == best[0] and cost < best[1]):
                best = (placed, cost)
            return
        zi, _, n = items[i]
        opts = options[i]
        for split in splits(n, len(opts), [free[sj] for sj in opts]):
            new_free = free.copy()
            extra = 0.0
            for sj, a in zip(opts, split, strict=True):
                new_free[sj] -= a
                extra += a * prob.eta_s[zi, sj]
            go(i + 1, new_free, placed + sum(split), cost + extra)

    go(0, [s.free for s in prob.shelters], 0, 0.0)
    return best


@st.composite
def tiny_problems(draw: st.DrawFn, max_n: int = 3) -> EvacuationProblem:
    n_zones = draw(st.integers(1, 2))
    n_shelters = draw(st.integers(1, 3))
    zones = []
    for zi in range(n_zones):
        pop = draw(st.integers(0, max_n))
        acc = draw(st.integers(0, pop))
        pets = draw(st.integers(0, pop - acc))
        zones.append(Zone(f"z{zi}", pop, acc, pets))
    shelters = [
        ShelterSpace(sj, draw(st.integers(0, max_n)), draw(st.booleans()), draw(st.booleans()))
        for sj in range(n_shelters)
    ]
    eta_values = st.one_of(st.integers(0, 20).map(float), st.just(INF))
    eta = np.array(
        [[draw(eta_values) for _ in range(n_shelters)] for _ in range(n_zones)], dtype=float
    )
    max_eta = draw(st.one_of(st.just(INF), st.integers(0, 20).map(float)))
    return EvacuationProblem(tuple(zones), tuple(shelters), eta, max_eta)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems())
def test_matches_brute_force(prob: EvacuationProblem) -> None:
    plan = solve(prob)
    placed, cost = brute_force(prob)
    assert plan.placed == placed
    assert plan.cost == pytest.approx(cost)


# --- properties -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(tiny_problems(max_n=40))
def test_plan_properties(prob: EvacuationProblem) -> None:
    plan = solve(prob)
    zones = {z.id: zi for zi, z in enumerate(prob.zones)}
    shelters = {s.id: sj for sj, s in enumerate(prob.shelters)}

    used = by_shelter(plan)
    for s in prob.shelters:
        assert used.get(s.id, 0) <= s.free

    accounted: Counter[tuple[str, str]] = Counter()
    for p in plan.placements:
        zi, sj = zones[p.zone_id], shelters[p.shelter_id]
        assert p.people > 0
        assert suits(prob.shelters[sj], p.group)
        assert math.isfinite(p.eta_s) and p.eta_s <= prob.max_eta_s
        assert p.eta_s == prob.eta_s[zi, sj]
        accounted[p.zone_id, p.group] += p.people
    for u in plan.unplaced:
        assert u.people > 0 and u.reason
        accounted[u.zone_id, u.group] += u.people
    for z in prob.zones:
        for g in GROUPS:
            assert accounted[z.id, g] == sizes(z)[g]

    assert plan.cost == pytest.approx(sum(p.people * p.eta_s for p in plan.placements))
    # Anyone left over for lack of capacity means every suitable reachable shelter is full.
    for u in plan.unplaced:
        zi = zones[u.zone_id]
        for sj, s in enumerate(prob.shelters):
            if suits(s, u.group) and reachable(prob, zi, sj):
                assert u.reason == REASON_NO_CAPACITY
                assert used.get(s.id, 0) == s.free
