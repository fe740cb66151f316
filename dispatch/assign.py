"""Plan many incidents at once: assign available units to incidents' needs.

Data -> model -> solve -> extract, as in OR-Tools' samples. Each incident needs
``count`` units of some capabilities (its response plan); each unit fills at most one such
*slot line*. The objective is the priority-weighted drive time of the units sent plus a
penalty per unfilled unit slot (``unmet_penalty_s`` x priority), all in seconds.

- Without a coverage constraint the problem is a transportation problem, solved exactly
  by min-cost flow: source -> unit (capacity 1) -> slot line (unit capable, eta finite,
  cost priority x eta) -> sink (capacity ``count``), plus a source -> slot "unmet" arc at
  the penalty, so a full flow always exists.
- With coverage (keep every district that is covered now within reach of an unassigned
  unit) the flow optimum is used when it already keeps coverage. Otherwise the model is
  restricted to pruned candidates (the k fastest capable units per slot line, plus the
  hint's arcs) and its LP relaxation is solved (GLOP): the unit and slot rows form a
  network matrix, so the LP optimum is usually integral, which proves it optimal. When it
  is fractional, CP-SAT solves the 0-1 model under the time limit and seed, hinted with the
  best of the greedy plan, the flow plan repaired to keep coverage and the rounded LP; the
  LP bound can prove its answer optimal too.

Every plan is compared with the greedy nearest-first plan on the same problem and is never
worse; both costs are reported. Plans are proposals: nothing here touches a database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow
from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

DEFAULT_CANDIDATES_WITH_COVERAGE = 10  # per slot line, when coverage needs CP-SAT
CP_SAT_WORKERS = 2
_MAX_SCALE = 1e6  # integer cost units per priority-second (min-cost flow and CP-SAT)
_MAX_INT_COST = 2.0**40  # keeps scaled sums far from int64 overflow inside the solvers
_TOL = 1e-6


# --- data --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Need:
    """One line of a response plan: ``count`` units with ``capability``."""

    capability: str
    count: int


@dataclass(frozen=True)
class IncidentDemand:
    """An open incident: its weight (> 0, e.g. extreme 4 ... minor 1) and its needs."""

    id: int
    priority: float
    needs: tuple[Need, ...]


@dataclass(frozen=True)
class UnitSupply:
    """An available unit and what it can do."""

    id: int
    capabilities: frozenset[str]


@dataclass(frozen=True, eq=False)
class Coverage:
    """Keep districts within reach: ``covers[j, d]`` is true when unit ``j`` reaches
    district ``d`` within ``target_s`` seconds.

    Hard for every district some unit covers now: at least one of its covering units stays
    unassigned. It is never infeasible, since a need line may go unmet instead (at its
    penalty); districts nobody covers now are relaxed (they count in ``coverage_before``).
    """

    district_ids: tuple[str, ...]
    covers: BoolArray  # (n_units, n_districts)
    target_s: float


@dataclass(frozen=True, eq=False)
class AssignProblem:
    """Incidents, units and drive times ``eta_s[unit, incident]`` in seconds (inf =
    unreachable). Validated on construction (ValueError)."""

    incidents: tuple[IncidentDemand, ...]
    units: tuple[UnitSupply, ...]
    eta_s: FloatArray  # (n_units, n_incidents)
    coverage: Coverage | None = None
    unmet_penalty_s: float = 3600.0  # per unfilled unit slot, times the priority
    candidates_per_slot: int = 0  # 0 = all; else the k fastest capable units per slot line

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class Assignment:
    unit_id: int
    incident_id: int
    capability: str  # the need line it fills
    eta_s: float


@dataclass(frozen=True)
class Unmet:
    incident_id: int
    capability: str
    missing: int


@dataclass(frozen=True)
class AssignPlan:
    """A proposal. ``cost`` and ``greedy_cost`` are priority-weighted seconds, penalties
    for unmet slots included; coverage shares are of ``Coverage.district_ids``."""

    assignments: tuple[Assignment, ...]
    unmet: tuple[Unmet, ...]
    cost: float
    greedy_cost: float
    solver: str  # "min_cost_flow" | "lp" | "cp_sat" | "greedy"
    status: str  # "optimal" | "feasible" | "greedy_fallback" | "greedy"
    seconds: float
    coverage_before: float | None = None  # share of districts covered by all units
    coverage_after: float | None = None  # ... by the units left unassigned


def _validate(p: AssignProblem) -> None:
    shape = (len(p.units), len(p.incidents))
    eta = np.asarray(p.eta_s)
    if eta.shape != shape:
        raise ValueError(f"eta_s has shape {eta.shape}; expected (n_units, n_incidents) = {shape}")
    if np.isnan(eta).any() or (eta < 0).any():
        raise ValueError("eta_s must be >= 0 seconds (inf for unreachable), never NaN")
    for kind, ids in (("incident", [i.id for i in p.incidents]), ("unit", [u.id for u in p.units])):
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate {kind} ids")
    for inc in p.incidents:
        if not (np.isfinite(inc.priority) and inc.priority > 0):
            raise ValueError(f"incident {inc.id}: priority must be finite and > 0")
        if any(n.count < 0 for n in inc.needs):
            raise ValueError(f"incident {inc.id}: a need count is negative")
    if not (np.isfinite(p.unmet_penalty_s) and p.unmet_penalty_s > 0):
        raise ValueError("unmet_penalty_s must be finite and > 0")
    if p.candidates_per_slot < 0:
        raise ValueError("candidates_per_slot must be >= 0 (0 = all)")
    if p.coverage is not None:
        want = (len(p.units), len(p.coverage.district_ids))
        if np.asarray(p.coverage.covers).shape != want:
            raise ValueError(
                f"coverage.covers has shape {np.shape(p.coverage.covers)}; "
                f"expected (n_units, n_districts) = {want}"
            )


# --- internal model ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Slots:
    """One row per need line with count > 0."""

    incident: IntArray  # incident index
    capability: tuple[str, ...]
    count: IntArray
    weight: FloatArray  # the incident's priority

    def __len__(self) -> int:
        return len(self.capability)


@dataclass(frozen=True)
class _Arcs:
    """Candidate (unit, slot) pairs, slot-major."""

    unit: IntArray
    slot: IntArray
    cost: FloatArray  # priority x eta, priority-seconds


def _slots(p: AssignProblem) -> _Slots:
    rows = [
        (i, n.capability, n.count, inc.priority)
        for i, inc in enumerate(p.incidents)
        for n in inc.needs
        if n.count > 0
    ]
    return _Slots(
        np.array([r[0] for r in rows], dtype=np.int64),
        tuple(r[1] for r in rows),
        np.array([r[2] for r in rows], dtype=np.int64),
        np.array([r[3] for r in rows], dtype=np.float64),
    )


def _capable(p: AssignProblem, slots: _Slots) -> BoolArray:
    """``(n_units, n_slots)``: the unit has the capability and can reach the incident."""
    names = sorted(set(slots.capability))
    index = {c: k for k, c in enumerate(names)}
    has = np.array([[c in u.capabilities for c in names] for u in p.units], dtype=bool).reshape(
        len(p.units), len(names)
    )
    wanted = np.array([index[c] for c in slots.capability], dtype=np.int64)
    reach = np.isfinite(np.asarray(p.eta_s, dtype=np.float64))
    return has[:, wanted] & reach[:, slots.incident]


def _arcs(p: AssignProblem, slots: _Slots, mask: BoolArray, k: int) -> _Arcs:
    """The capable pairs, pruned to the ``k`` fastest units per slot line (0 = all)."""
    eta = np.asarray(p.eta_s, dtype=np.float64)[:, slots.incident]
    if 0 < k < mask.shape[0]:
        ranked = np.where(mask, eta, np.inf)
        best = np.argpartition(ranked, k - 1, axis=0)[:k]
        keep = np.zeros_like(mask)
        keep[best, np.arange(mask.shape[1])] = True
        mask = mask & keep
    slot, unit = np.nonzero(mask.T)
    return _Arcs(unit, slot, slots.weight[slot] * eta[unit, slot])


def _scale(arcs: _Arcs, slots: _Slots, penalty_s: float) -> float:
    top = max(float(arcs.cost.max(initial=0.0)), float(slots.weight.max(initial=0.0)) * penalty_s)
    return min(_MAX_SCALE, _MAX_INT_COST / max(top, 1.0))


# --- greedy ------------------------------------------------------------------------------
def _greedy_pairs(
    p: AssignProblem,
    slots: _Slots,
    mask: BoolArray,
    first: list[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """Nearest-first by incident priority (ties: input order), honouring coverage.

    ``first`` (pairs, e.g. a plan that breaks coverage) are tried before anything else and
    kept where coverage allows; greedy then fills what is left.
    """
    eta = np.asarray(p.eta_s, dtype=np.float64)
    used = np.zeros(len(p.units), dtype=bool)
    filled = np.zeros(len(slots), dtype=np.int64)
    protect = _protected_covers(p)
    free = protect.sum(axis=0) if protect is not None else None
    pairs: list[tuple[int, int]] = []

    def take(j: int, s: int) -> bool:
        if used[j] or filled[s] >= slots.count[s]:
            return False
        if protect is not None and free is not None:
            if (free[protect[j]] <= 1).any():
                return False  # sending j would leave a district with nobody near
            free[protect[j]] -= 1
        used[j] = True
        filled[s] += 1
        pairs.append((j, s))
        return True

    for j, s in sorted(first or [], key=lambda js: (-slots.weight[js[1]], js[1])):
        take(j, s)
    for s in np.argsort(-slots.weight, kind="stable").tolist():  # slots are in incident order
        cand = np.flatnonzero(mask[:, s] & ~used)
        for j in cand[np.argsort(eta[cand, slots.incident[s]], kind="stable")].tolist():
            if filled[s] >= slots.count[s]:
                break
            take(j, s)
    return pairs


def greedy(problem: AssignProblem) -> AssignPlan:
    """The greedy nearest-first plan: incidents by priority (highest first), each need line
    filled with the nearest capable unused units.

    With ``problem.coverage`` a unit is skipped when sending it would leave a district that
    is covered now with no unassigned unit within the target time.

    Parameters
    ----------
    problem : AssignProblem
        Incidents, units and drive times (s).

    Returns
    -------
    AssignPlan
        ``solver == status == "greedy"``; ``cost == greedy_cost`` (priority-weighted s).
    """
    started = time.perf_counter()
    slots = _slots(problem)
    pairs = _greedy_pairs(problem, slots, _capable(problem, slots))
    cost = _cost(problem, slots, pairs)
    return _plan(problem, slots, pairs, cost, cost, "greedy", "greedy", started)


# --- min-cost flow -----------------------------------------------------------------------
def _min_cost_flow(p: AssignProblem, slots: _Slots, arcs: _Arcs) -> list[tuple[int, int]] | None:
    """The exact optimum on ``arcs``; None if OR-Tools reports anything but optimal."""
    n_units, n_slots = len(p.units), len(slots)
    source, sink = n_units + n_slots, n_units + n_slots + 1
    scale = _scale(arcs, slots, p.unmet_penalty_s)
    slot_node = n_units + np.arange(n_slots, dtype=np.int64)
    unit_node = np.arange(n_units, dtype=np.int64)
    tails = np.concatenate(
        [np.full(n_units, source), arcs.unit, slot_node, np.full(n_slots, source)]
    )
    heads = np.concatenate([unit_node, n_units + arcs.slot, np.full(n_slots, sink), slot_node])
    caps = np.concatenate([np.ones(n_units + len(arcs.unit), np.int64), slots.count, slots.count])
    costs = np.concatenate(
        [
            np.zeros(n_units),
            np.rint(arcs.cost * scale),
            np.zeros(n_slots),
            np.rint(slots.weight * p.unmet_penalty_s * scale),
        ]
    ).astype(np.int64)
    flow = min_cost_flow.SimpleMinCostFlow()
    ids = flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    demand = int(slots.count.sum())
    flow.set_nodes_supplies(np.array([source, sink]), np.array([demand, -demand]))
    if flow.solve() != flow.OPTIMAL:
        return None
    first = n_units
    used = flow.flows(ids[first : first + len(arcs.unit)]) > 0
    return list(zip(arcs.unit[used].tolist(), arcs.slot[used].tolist(), strict=True))


# --- coverage: LP relaxation, then CP-SAT -------------------------------------------------
@dataclass(frozen=True)
class _Rows:
    """The side-constrained model's rows, as lists of arc indices."""

    by_unit: list[list[int]]  # at most one
    by_slot: list[list[int]]  # at most the slot's count
    districts: list[list[int]]  # at most (covering units - 1): one of them stays free
    district_rhs: list[int]


def _rows(p: AssignProblem, slots: _Slots, arcs: _Arcs) -> _Rows:
    protect = _protected_covers(p)
    assert protect is not None
    by_unit: list[list[int]] = [[] for _ in p.units]
    by_slot: list[list[int]] = [[] for _ in range(len(slots))]
    for a, (j, s) in enumerate(zip(arcs.unit.tolist(), arcs.slot.tolist(), strict=True)):
        by_unit[j].append(a)
        by_slot[s].append(a)
    districts, rhs = [], []
    for d in range(protect.shape[1]):
        near = np.flatnonzero(protect[:, d]).tolist()
        if all(by_unit[j] for j in near):  # else someone near always stays free
            districts.append([a for j in near for a in by_unit[j]])
            rhs.append(len(near) - 1)
    return _Rows(by_unit, by_slot, districts, rhs)


def _lp(
    p: AssignProblem, slots: _Slots, arcs: _Arcs, rows: _Rows
) -> tuple[float, FloatArray] | None:
    """The LP relaxation (GLOP): (lower bound on the cost, x). Unit-to-slot rows form a
    network matrix, so x is often integral already, which proves it optimal."""
    lp = pywraplp.Solver.CreateSolver("GLOP")
    if lp is None:
        return None
    x = [lp.NumVar(0.0, 1.0, "") for _ in range(len(arcs.unit))]
    for group, bounds in (
        (rows.by_unit, [1] * len(rows.by_unit)),
        (rows.by_slot, slots.count.tolist()),
        (rows.districts, rows.district_rhs),
    ):
        for members, rhs in zip(group, bounds, strict=True):
            if len(members) > rhs:
                lp.Add(lp.Sum([x[a] for a in members]) <= rhs)
    gain = arcs.cost - slots.weight[arcs.slot] * p.unmet_penalty_s
    lp.Minimize(lp.Sum([float(g) * v for g, v in zip(gain.tolist(), x, strict=True)]))
    if lp.Solve() != pywraplp.Solver.OPTIMAL:
        return None
    unfilled = float((slots.count * slots.weight).sum()) * p.unmet_penalty_s
    values = np.array([v.solution_value() for v in x], dtype=np.float64)
    return unfilled + float(lp.Objective().Value()), values


def _cp_sat(
    p: AssignProblem,
    slots: _Slots,
    arcs: _Arcs,
    rows: _Rows,
    hint: list[tuple[int, int]],
    *,
    time_limit_s: float,
    seed: int,
) -> tuple[list[tuple[int, int]] | None, bool]:
    """Solve with coverage constraints; returns (pairs or None, proven optimal)."""
    scale = _scale(arcs, slots, p.unmet_penalty_s)
    model = cp_model.CpModel()
    x = [model.new_bool_var(f"x{a}") for a in range(len(arcs.unit))]
    for members in rows.by_unit:
        if len(members) > 1:
            model.add_at_most_one(x[a] for a in members)
    for members, count in zip(rows.by_slot, slots.count.tolist(), strict=True):
        if len(members) > count:
            model.add(sum(x[a] for a in members) <= count)
    for members, rhs in zip(rows.districts, rows.district_rhs, strict=True):
        model.add(sum(x[a] for a in members) <= rhs)
    # Filling a slot line saves its penalty: minimise sum (cost - penalty) x, plus a constant.
    gain = np.rint((arcs.cost - slots.weight[arcs.slot] * p.unmet_penalty_s) * scale)
    model.minimize(cp_model.LinearExpr.weighted_sum(x, gain.astype(np.int64).tolist()))
    chosen = set(hint)
    for a, pair in enumerate(zip(arcs.unit.tolist(), arcs.slot.tolist(), strict=True)):
        model.add_hint(x[a], pair in chosen)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = CP_SAT_WORKERS
    solver.parameters.random_seed = seed
    solver.parameters.max_time_in_seconds = max(time_limit_s, 0.01)
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, False
    pairs = [
        (int(j), int(s))
        for a, (j, s) in enumerate(zip(arcs.unit, arcs.slot, strict=True))
        if solver.boolean_value(x[a])
    ]
    return pairs, status == cp_model.OPTIMAL


def _protected_covers(p: AssignProblem) -> BoolArray | None:
    """``covers`` restricted to districts some unit covers now (the ones to keep)."""
    if p.coverage is None:
        return None
    covers = np.asarray(p.coverage.covers, dtype=bool)  # shape checked on construction
    return covers[:, covers.any(axis=0)]


def _keeps_coverage(p: AssignProblem, pairs: list[tuple[int, int]]) -> bool:
    protect = _protected_covers(p)
    if protect is None:
        return True
    free = np.ones(len(p.units), dtype=bool)
    free[[j for j, _ in pairs]] = False
    return bool(protect[free].any(axis=0).all())


# --- solve -------------------------------------------------------------------------------
def solve(problem: AssignProblem, *, time_limit_s: float = 1.0, seed: int = 0) -> AssignPlan:
    """Assign units to incidents, minimising priority-weighted drive time plus penalties.

    Parameters
    ----------
    problem : AssignProblem
        Incidents (priorities, need lines), units (capabilities), ``eta_s`` (s, inf =
        unreachable), optional coverage, penalty per unfilled slot (s) and pruning.
    time_limit_s : float
        Wall-clock limit for CP-SAT, in seconds (min-cost flow is exact and needs none).
    seed : int
        CP-SAT's random seed.

    Returns
    -------
    AssignPlan
        Never costlier than :func:`greedy` on the same problem (both costs reported, in
        priority-weighted seconds). ``solver`` says which plan was kept ("min_cost_flow",
        "lp", "cp_sat" or "greedy") and ``status`` whether it is proven optimal (on the
        candidate set), ``"feasible"``, or ``"greedy_fallback"`` when nothing better than
        greedy was found. Infeasible or empty inputs give unmet lines, never an exception.
        The same seed gives the same plan whenever the answer is proven optimal.
    """
    started = time.perf_counter()
    slots = _slots(problem)
    mask = _capable(problem, slots)
    base = _greedy_pairs(problem, slots, mask)
    options: list[tuple[list[tuple[int, int]], str, str]] = []
    if len(slots):
        k = problem.candidates_per_slot
        arcs = _with_pairs(_arcs(problem, slots, mask, k), slots, base, problem)
        flow = _min_cost_flow(problem, slots, arcs)
        if flow is not None and _keeps_coverage(problem, flow):
            options.append((flow, "min_cost_flow", "optimal"))
        elif problem.coverage is not None:
            left = time_limit_s - (time.perf_counter() - started)
            options += _with_coverage(problem, slots, mask, base, flow, left, seed)
    greedy_cost = _cost(problem, slots, base)
    pairs, cost, solver, status = base, greedy_cost, "greedy", "greedy_fallback"
    for option, name, state in options:
        c = _cost(problem, slots, option)
        if c < cost - _TOL or (state == "optimal" and c <= cost + _TOL):
            pairs, cost, solver, status = option, c, name, state
    if not len(slots):
        status = "optimal"  # nothing to plan
    return _plan(problem, slots, pairs, cost, greedy_cost, solver, status, started)


def _with_coverage(
    p: AssignProblem,
    slots: _Slots,
    mask: BoolArray,
    base: list[tuple[int, int]],
    flow: list[tuple[int, int]] | None,
    time_limit_s: float,
    seed: int,
) -> list[tuple[list[tuple[int, int]], str, str]]:
    """Plans for when the flow optimum breaks coverage, best first: the LP optimum if it is
    integral, else CP-SAT's; then the flow plan repaired to keep coverage."""
    started = time.perf_counter()
    options: list[tuple[list[tuple[int, int]], str, str]] = []
    hint = base
    if flow is not None:  # the flow plan, minus units coverage can't spare, refilled greedily
        repaired = _greedy_pairs(p, slots, mask, first=flow)
        options.append((repaired, "min_cost_flow", "feasible"))
        if _cost(p, slots, repaired) < _cost(p, slots, base):
            hint = repaired
    arcs = _arcs(p, slots, mask, p.candidates_per_slot or DEFAULT_CANDIDATES_WITH_COVERAGE)
    arcs = _with_pairs(arcs, slots, hint, p)
    rows = _rows(p, slots, arcs)
    relaxed = _lp(p, slots, arcs, rows)
    bound = -np.inf
    if relaxed is not None:
        bound, x = relaxed
        pick = x > 0.5
        lp_pairs = list(zip(arcs.unit[pick].tolist(), arcs.slot[pick].tolist(), strict=True))
        if np.all((x < _TOL) | (x > 1.0 - _TOL)):  # integral: optimal on the candidates
            return [(lp_pairs, "lp", "optimal"), *options]
        on_arcs = np.zeros_like(mask)  # round within the candidates: the bound holds there
        on_arcs[arcs.unit, arcs.slot] = True
        rounded = _greedy_pairs(p, slots, on_arcs, first=lp_pairs)
        if _cost(p, slots, rounded) < _cost(p, slots, hint):
            hint = rounded
    left = time_limit_s - (time.perf_counter() - started)
    found, optimal = _cp_sat(p, slots, arcs, rows, hint, time_limit_s=left, seed=seed)
    if found is not None:
        optimal = optimal or _cost(p, slots, found) <= bound + _TOL * max(1.0, abs(bound))
        options.insert(0, (found, "cp_sat", "optimal" if optimal else "feasible"))
    return options


def _with_pairs(
    arcs: _Arcs, slots: _Slots, pairs: list[tuple[int, int]], p: AssignProblem
) -> _Arcs:
    """``arcs`` plus ``pairs`` (so the greedy hint is a feasible CP-SAT solution)."""
    have = set(zip(arcs.unit.tolist(), arcs.slot.tolist(), strict=True))
    extra = [pair for pair in pairs if pair not in have]
    if not extra:
        return arcs
    unit = np.concatenate([arcs.unit, np.array([j for j, _ in extra], dtype=np.int64)])
    slot = np.concatenate([arcs.slot, np.array([s for _, s in extra], dtype=np.int64)])
    eta = np.asarray(p.eta_s, dtype=np.float64)[unit, slots.incident[slot]]
    return _Arcs(unit, slot, slots.weight[slot] * eta)


# --- extract -----------------------------------------------------------------------------
def _cost(p: AssignProblem, slots: _Slots, pairs: list[tuple[int, int]]) -> float:
    """Priority-weighted seconds of ``pairs`` plus the penalties of unfilled slots."""
    eta = np.asarray(p.eta_s, dtype=np.float64)
    filled = np.zeros(len(slots), dtype=np.int64)
    total = 0.0
    for j, s in pairs:
        total += float(slots.weight[s] * eta[j, slots.incident[s]])
        filled[s] += 1
    missing = slots.count - filled
    return total + float((missing * slots.weight).sum()) * p.unmet_penalty_s


def _plan(
    p: AssignProblem,
    slots: _Slots,
    pairs: list[tuple[int, int]],
    cost: float,
    greedy_cost: float,
    solver: str,
    status: str,
    started: float,
) -> AssignPlan:
    eta = np.asarray(p.eta_s, dtype=np.float64)
    pairs = sorted(pairs, key=lambda js: (js[1], eta[js[0], slots.incident[js[1]]], js[0]))
    filled = np.zeros(len(slots), dtype=np.int64)
    assignments = []
    for j, s in pairs:
        i = int(slots.incident[s])
        filled[s] += 1
        assignments.append(
            Assignment(p.units[j].id, p.incidents[i].id, slots.capability[s], float(eta[j, i]))
        )
    unmet = tuple(
        Unmet(p.incidents[int(slots.incident[s])].id, slots.capability[s], int(miss))
        for s, miss in enumerate(slots.count - filled)
        if miss > 0
    )
    before = after = None
    if p.coverage is not None:
        covers = np.asarray(p.coverage.covers, dtype=bool)  # shape checked on construction
        free = np.ones(len(p.units), dtype=bool)
        free[[j for j, _ in pairs]] = False
        n = max(covers.shape[1], 1)  # no districts: vacuously all covered
        before = 1.0 - float((~covers.any(axis=0)).sum()) / n
        after = 1.0 - float((~covers[free].any(axis=0)).sum()) / n
    return AssignPlan(
        tuple(assignments),
        unmet,
        cost,
        greedy_cost,
        solver,
        status,
        time.perf_counter() - started,
        before,
        after,
    )
