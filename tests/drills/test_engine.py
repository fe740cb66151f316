"""The simulation against theory (Erlang C), against networkx, and policy by policy."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np
import pytest
import shapely

from drills import scenario as sc
from drills.runner import RunResult, run
from drills.travel import Travel
from drills.world import fleet_from_scenario
from gis.engine import Closures, Engine
from tests.support.drills import CENTRE, scenario_dict


def simulate(data: dict[str, Any], engine: Engine) -> RunResult:
    s = sc.parse(data)
    return run(s, fleet_from_scenario(s), engine)


def kpis(result: RunResult, policy: str = "nearest") -> dict[str, Any]:
    return result.report["policies"][policy]["kpis"]


def ci(result: RunResult, key: str, policy: str = "nearest") -> list[float]:
    return result.report["policies"][policy]["ci95"][key]


def events(result: RunResult, kind: str, policy: str = "nearest") -> list[dict[str, Any]]:
    return [e for e in result.replays[policy]["events"] if e["kind"] == kind]


def erlang_c(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_a_degenerate_scenario_is_the_mmc_queue(road_engine: Engine) -> None:
    """One station, c units, Poisson calls at the station, no travel, no turnout,
    exponential time on scene: the queued fraction is Erlang C, the mean wait
    C / (c mu - lambda) and the utilisation lambda / (c mu), inside the run's 95% CIs."""
    c, lam_per_h, mean_s = 3, 2.0, 3600.0
    data = scenario_dict(
        duration_s=30 * 86_400,
        warmup_s=86_400,
        replications=10,
        seed=1,
        stations=[{"name": "S", "lon": CENTRE[0], "lat": CENTRE[1]}],
        units=[{"callsign": f"U{i}", "station": "S"} for i in range(c)],
        response_plans={},
        service={"on_scene_s": {"dist": "exponential", "mean": mean_s}},
        generators=[{"type": "medical", "rate_per_h": lam_per_h, "points": [list(CENTRE)]}],
    )
    result = simulate(data, road_engine)
    a = lam_per_h * mean_s / 3600
    C = erlang_c(c, a)
    wait = C / (c / mean_s - lam_per_h / 3600)
    low, high = ci(result, "queued_fraction")
    assert low <= C <= high, (C, low, high)
    low, high = ci(result, "mean_queue_wait_s")
    assert low <= wait <= high, (wait, low, high)
    low, high = ci(result, "utilisation")
    assert low - 0.01 <= a / c <= high + 0.01  # utilisation includes the warm-up day
    # no travel: a call answered at once has a response time of 0
    assert kpis(result)["response_s"]["p50"] == 0


def _single_call(at: tuple[float, float], **changes: Any) -> dict[str, Any]:
    return scenario_dict(
        replications=1,
        generators=[],
        injects=[{"at_s": 100, "lon": at[0], "lat": at[1], "type": "medical"}],
        response_plans={},
        service={"on_scene_s": {"dist": "fixed", "value": 600}},
        **changes,
    )


def _nx_times(
    engine: Engine, sources: list[int], target: int, closed: set[int] = frozenset()
) -> list[float]:
    g = engine.graph
    graph = nx.DiGraph()
    graph.add_nodes_from(range(g.n_nodes))
    for e in range(g.n_edges):
        if e in closed:
            continue
        u, v, w = int(g.edge_u[e]), int(g.edge_v[e]), float(g.edge_time_s[e])
        if not graph.has_edge(u, v) or graph[u][v]["w"] > w:
            graph.add_edge(u, v, w=w)
    dist = nx.single_source_dijkstra_path_length(graph.reverse(copy=False), target, weight="w")
    return [dist.get(s, math.inf) for s in sources]


def test_nearest_sends_the_unit_networkx_finds_fastest(road_engine: Engine) -> None:
    call = (24.949, 60.174)
    result = simulate(_single_call(call), road_engine)
    travel = Travel(road_engine)
    stations = travel.nodes(np.array([24.937, 24.945, 24.952]), np.array([60.171, 60.169, 60.177]))
    target = int(travel.nodes(np.array([call[0]]), np.array([call[1]]))[0])
    times = _nx_times(road_engine, [int(s) for s in stations], target)
    units = result.replays["nearest"]["units"]
    (sent,) = events(result, "assign")
    # the fastest station's first unit in the list (ties: the lower id)
    best_station = int(np.argmin(times))
    assert units[sent["unit"]]["station"] == best_station
    (arrive,) = events(result, "arrive")
    assert arrive["t"] - 100 == pytest.approx(times[best_station], abs=1e-3)
    assert kpis(result)["response_s"]["p50"] == pytest.approx(times[best_station], abs=1e-3)


def test_a_closure_is_driven_around_while_it_is_active(road_engine: Engine) -> None:
    call = (24.949, 60.174)
    station = {"name": "W", "lon": 24.937, "lat": 60.171}
    base = _single_call(call, stations=[station], units=[{"callsign": "W1", "station": "W"}])
    open_road = simulate(base, road_engine)
    # close a box around the middle of the fastest route
    travel = Travel(road_engine)
    src = int(travel.nodes(np.array([24.937]), np.array([60.171]))[0])
    dst = int(travel.nodes(np.array([call[0]]), np.array([call[1]]))[0])
    route = road_engine.route(road_engine.snap_node(src), road_engine.snap_node(dst))
    assert route is not None
    mid = route.coords[len(route.coords) // 2]
    box = shapely.box(mid[0] - 0.0008, mid[1] - 0.0004, mid[0] + 0.0008, mid[1] + 0.0004)
    ring = [list(p) for p in shapely.get_coordinates(box.exterior)]
    closure = {"at_s": 0, "until_s": 50_000, "polygon": {"type": "Polygon", "coordinates": [ring]}}
    closed = simulate({**base, "closures": [closure]}, road_engine)
    after = simulate({**base, "closures": [{**closure, "until_s": 50}]}, road_engine)
    edges = set(road_engine.closed_edges(Closures(polygons=(box,))).tolist())
    (expected,) = _nx_times(road_engine, [src], dst, edges)
    t_open = kpis(open_road)["response_s"]["p50"]
    t_closed = kpis(closed)["response_s"]["p50"]
    assert math.isfinite(expected) and t_closed > t_open
    assert t_closed == pytest.approx(expected, abs=1e-3)
    assert kpis(after)["response_s"]["p50"] == pytest.approx(t_open, abs=1e-3)  # reopened at 50 s
    assert [e["active"] for e in events(closed, "closure")] == [True, False]  # reopened at 50,000 s


def test_move_up_relocates_idle_units_to_keep_coverage(road_engine: Engine) -> None:
    data = scenario_dict(
        duration_s=3 * 86_400,
        replications=4,
        seed=1,
        policies=["nearest", "move_up"],
        targets={"response_s": 150},
        units=[
            {"callsign": "W1", "station": "W"},
            {"callsign": "W2", "station": "W"},
            {"callsign": "M1", "station": "M"},
            {"callsign": "E1", "station": "E"},
            {"callsign": "E2", "station": "E"},
        ],
        response_plans={},
        service={"on_scene_s": {"dist": "exponential", "mean": 2400}},
        generators=[
            {
                "type": "medical",
                "rate_per_h": 2.0,
                "points": [[24.945, 60.169], [24.946, 60.1695], [24.944, 60.1685]],
            }
        ],
    )
    result = simulate(data, road_engine)
    moves = events(result, "move", "move_up")
    assert moves and {m["station"] for m in moves} == {1}  # to M, where the calls are
    assert not events(result, "move", "nearest")
    near, moved = kpis(result, "nearest"), kpis(result, "move_up")
    assert moved["coverage"] > near["coverage"]
    assert moved["within_target"] > near["within_target"]
    assert moved["incidents"] == near["incidents"]  # the same calls for both


def test_plan_gives_the_close_unit_to_the_severe_call(road_engine: Engine) -> None:
    """A minor call comes first, a severe one a second later, both beside M. Nearest gives
    M's unit to the first; plan, deciding both together, gives it to the severe one."""
    at = [24.9455, 60.1692]
    data = scenario_dict(
        replications=1,
        policies=["nearest", "plan"],
        units=[{"callsign": "M1", "station": "M"}, {"callsign": "E1", "station": "E"}],
        response_plans={},
        generators=[],
        injects=[
            {"at_s": 10, "lon": at[0], "lat": at[1], "type": "medical", "severity": "minor"},
            {"at_s": 11, "lon": at[0], "lat": at[1], "type": "medical", "severity": "extreme"},
        ],
    )
    result = simulate(data, road_engine)
    first = {e["incident"]: e["unit"] for e in events(result, "assign", "nearest")}
    planned = {e["incident"]: e["unit"] for e in events(result, "assign", "plan")}
    assert first == {0: 0, 1: 1}
    assert planned == {0: 1, 1: 0}
    assert all(e["t"] == 30 for e in events(result, "assign", "plan"))  # the first tick


def test_patients_go_to_the_nearest_hospital(road_engine: Engine) -> None:
    base = scenario_dict(duration_s=6 * 3600, replications=1, seed=3)
    with_transport = {
        **base,
        "hospitals": [
            {"name": "H1", "lon": 24.94, "lat": 60.176},
            {"name": "H2", "lon": 24.95, "lat": 60.166},
        ],
        "service": {
            **base["service"],
            "transport_probability": 1.0,
            "handover_s": {"dist": "fixed", "value": 900},
        },
    }
    plain, taken = simulate(base, road_engine), simulate(with_transport, road_engine)
    assert not events(plain, "hospital")
    answered_calls = {e["incident"] for e in events(taken, "arrive")}
    cleared = {e["incident"] for e in events(taken, "clear")}
    assert {e["incident"] for e in events(taken, "hospital")} == cleared & answered_calls
    assert kpis(taken)["utilisation"] > kpis(plain)["utilisation"]


def test_a_returning_unit_is_sent_again_from_where_it_is(road_engine: Engine) -> None:
    east = [24.952, 60.166]
    first = {"at_s": 0, "lon": east[0], "lat": east[1], "type": "medical"}
    data = scenario_dict(
        replications=1,
        stations=[{"name": "W", "lon": 24.937, "lat": 60.177}],
        units=[{"callsign": "W1", "station": "W"}],
        response_plans={},
        service={"on_scene_s": {"dist": "fixed", "value": 60}},
        generators=[],
        injects=[first],
    )
    alone = simulate(data, road_engine)
    (arrived,) = events(alone, "arrive")
    (home,) = events(alone, "home")
    drive = arrived["t"]
    halfway = (arrived["t"] + 60 + home["t"]) / 2  # on its way home
    second = {**first, "at_s": halfway, "lon": east[0] - 0.0005}
    result = simulate({**data, "injects": [first, second]}, road_engine)
    assigns, arrives = events(result, "assign"), events(result, "arrive")
    assert assigns[1]["t"] == pytest.approx(
        halfway, abs=1e-3
    )  # not queued: returning units can be sent
    assert arrives[1]["t"] - halfway < drive  # from the road, not from the station
    assert kpis(result)["queued_fraction"] == 0


def test_calls_nobody_can_answer_are_missed_and_their_lines_unmet(road_engine: Engine) -> None:
    data = scenario_dict(
        duration_s=6 * 3600,
        replications=1,
        response_plans={"medical": {"moderate": [{"capability": "hazmat", "count": 2}]},
                        "fire": {"severe": [{"capability": "hazmat", "count": 1}]}},
    )  # fmt: skip
    k = kpis(simulate(data, road_engine))
    assert k["incidents"] > 0 and k["answered"] == 0
    assert k["response_s"]["p50"] is None
    assert k["within_target"] is not None and k["within_target"] < 0.05  # only pending left out
    assert k["queued_fraction"] == 1
    assert k["unmet_lines"] >= k["incidents"]


def test_the_same_seed_gives_the_same_report(road_engine: Engine) -> None:
    from drills.report import dumps

    data = scenario_dict(policies=["nearest", "plan", "move_up"], replications=2)
    a, b = simulate(data, road_engine).report, simulate(data, road_engine).report
    other = simulate({**data, "seed": 8}, road_engine).report
    for r in (a, b, other):
        r.pop("timing")
    assert dumps(a) == dumps(b)
    assert dumps(a) != dumps(other)


def test_a_scenario_for_another_city_is_refused(road_engine: Engine) -> None:
    data = scenario_dict(stations=[{"name": "Columbus 1", "lon": -82.99, "lat": 39.96}],
                         units=[{"callsign": "C1", "station": "Columbus 1"}])  # fmt: skip
    says = r"Columbus 1 at -82\.99000,39\.96000 is .* km from the nearest road"
    with pytest.raises(sc.ScenarioError, match=says):
        simulate(data, road_engine)


def test_shares_keep_their_interval_inside_0_to_1(road_engine: Engine) -> None:
    result = simulate(scenario_dict(replications=3, duration_s=4 * 3600), road_engine)
    ci95 = result.report["policies"]["nearest"]["ci95"]
    for key in ("within_target", "queued_fraction", "utilisation", "coverage"):
        if ci95[key] is not None:
            assert 0 <= ci95[key][0] <= ci95[key][1] <= 1, key
    for bounds in ci95["within_target_by_type"].values():
        assert bounds is None or 0 <= bounds[0] <= bounds[1] <= 1
    assert all(b is None or b[0] >= 0 for b in ci95["response_s"].values())


def test_a_call_cut_off_by_a_closure_is_answered_when_the_road_reopens(road_engine: Engine) -> None:
    call = (24.949, 60.174)
    ring = [[call[0] - 0.001, call[1] - 0.0005], [call[0] + 0.001, call[1] - 0.0005],
            [call[0] + 0.001, call[1] + 0.0005], [call[0] - 0.001, call[1] + 0.0005],
            [call[0] - 0.001, call[1] - 0.0005]]  # fmt: skip
    closure = {"at_s": 0, "until_s": 1000, "polygon": {"type": "Polygon", "coordinates": [ring]}}
    for policy in ("nearest", "plan"):
        data = _single_call(call, closures=[closure], policies=[policy],
                            units=[{"callsign": "W1", "station": "W"}])  # fmt: skip
        result = simulate(data, road_engine)
        (sent,) = events(result, "assign", policy)
        assert 1000 <= sent["t"] <= 1030  # at the reopening (plan: its next tick)
        assert kpis(result, policy)["answered"] == 1
