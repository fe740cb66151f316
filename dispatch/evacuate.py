"""Evacuation: people in affected zones to shelters by drive time, within capacity.

Each zone's population is split into three disjoint groups:

* ``"accessible"`` -- people who need an accessible shelter,
* ``"pets"`` -- people arriving with pets, who need a shelter that allows pets,
* ``"general"`` -- everyone else, who may go to any shelter.

The groups are assumed **disjoint**: ``needs_accessible + with_pets <= population``
and ``general = population - needs_accessible - with_pets``. A person who both needs
an accessible shelter and has a pet must be counted in one group only by the caller
(usually ``needs_accessible``, the stricter need: the pet may then have to be
housed separately).

The plan maximises the number of people placed, then minimises the total drive
time in person-seconds. It is solved exactly as a min-cost flow (OR-Tools
``SimpleMinCostFlow``). Although there are three kinds of people, every shelter has
a *single* remaining capacity shared by all of them and the groups differ only in
which shelters they may use, so a single-commodity flow is exact: the group is
carried by the supply node ``(zone, group)`` and enforced by which arcs exist.
"""

from __future__ import annotations

import math
import operator
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow

__all__ = [
    "GROUPS",
    "REASON_BEYOND_MAX_ETA",
    "REASON_NO_CAPACITY",
    "REASON_NO_SUITABLE",
    "REASON_UNREACHABLE",
    "EvacuationPlan",
    "EvacuationProblem",
    "Placement",
    "ShelterSpace",
    "Unplaced",
    "Zone",
    "solve",
]

GROUPS: tuple[str, ...] = ("general", "accessible", "pets")

REASON_UNREACHABLE = "unreachable"
"""No shelter at all can be reached by road from the zone (every ETA is ``inf``)."""
REASON_BEYOND_MAX_ETA = "no shelter within max_eta"
"""Shelters are reachable, but none within ``max_eta_s``."""
REASON_NO_SUITABLE = {
    "accessible": "no accessible shelter within reach",
    "pets": "no pet-friendly shelter within reach",
}
"""Shelters are within reach, but none suits the group."""
REASON_NO_CAPACITY = "no capacity"
"""Suitable shelters are within reach, but their free places are used up."""

_MAX_SCALE = 1000.0  # integer costs in milliseconds unless that would overflow int64
_COST_BUDGET = 2**60  # headroom below 2**63 for OR-Tools' internal cost scaling


@dataclass(frozen=True)
class Zone:
    """An affected area (polygon or warning area) whose population must move.

    Attributes
    ----------
    id : str
        Zone identifier, unique within a problem.
    population : int
        People to move, ``>= 0``.
    needs_accessible : int
        Of ``population``, people needing an accessible shelter.
    with_pets : int
        Of ``population``, people arriving with pets (need ``pets_allowed``).
        Disjoint from ``needs_accessible``; see the module docstring.
    """

    id: str
    population: int
    needs_accessible: int = 0
    with_pets: int = 0


@dataclass(frozen=True)
class ShelterSpace:
    """A shelter's remaining room.

    Attributes
    ----------
    id : int
        Shelter identifier, unique within a problem.
    free : int
        Remaining places (capacity - occupancy - already planned), ``>= 0``.
    accessible : bool
        Whether it can take people who need an accessible shelter.
    pets_allowed : bool
        Whether it can take people arriving with pets.
    """

    id: int
    free: int
    accessible: bool
    pets_allowed: bool


@dataclass(frozen=True)
class EvacuationProblem:
    """Zones, shelters and the drive times between them.

    Attributes
    ----------
    zones : tuple of Zone
        Zones to evacuate; row ``i`` of ``eta_s`` belongs to ``zones[i]``.
    shelters : tuple of ShelterSpace
        Candidate shelters; column ``j`` of ``eta_s`` belongs to ``shelters[j]``.
    eta_s : numpy.ndarray
        ``(n_zones, n_shelters)`` drive time zone -> shelter in seconds, ``>= 0``;
        ``inf`` means unreachable.
    max_eta_s : float
        Do not send anyone further than this many seconds (inclusive).
    """

    zones: tuple[Zone, ...]
    shelters: tuple[ShelterSpace, ...]
    eta_s: NDArray[np.float64]
    max_eta_s: float = math.inf


@dataclass(frozen=True)
class Placement:
    """People of one group of one zone sent to one shelter.

    Attributes
    ----------
    zone_id : str
    shelter_id : int
    people : int
        Number of people, ``> 0``.
    group : str
        ``"general"``, ``"accessible"`` or ``"pets"``.
    eta_s : float
        Drive time zone -> shelter in seconds.
    """

    zone_id: str
    shelter_id: int
    people: int
    group: str
    eta_s: float


@dataclass(frozen=True)
class Unplaced:
    """People of one group of one zone who could not be placed.

    Attributes
    ----------
    zone_id : str
    group : str
        ``"general"``, ``"accessible"`` or ``"pets"``.
    people : int
        Number of people, ``> 0``.
    reason : str
        One of ``REASON_UNREACHABLE``, ``REASON_BEYOND_MAX_ETA``, the group's entry
        in ``REASON_NO_SUITABLE`` or ``REASON_NO_CAPACITY``, checked in that order.
    """

    zone_id: str
    group: str
    people: int
    reason: str


@dataclass(frozen=True)
class EvacuationPlan:
    """The solver's answer.

    Attributes
    ----------
    placements : tuple of Placement
        Ordered by zone (input order), group (``GROUPS`` order), then ETA.
    unplaced : tuple of Unplaced
        Ordered by zone (input order), then group (``GROUPS`` order).
    cost : float
        Total drive time, ``sum(people * eta_s)`` over placements, in person-seconds.
    seconds : float
        Wall-clock solve time in seconds.
    status : str
        ``"optimal"``: the most people placed, and among such plans the least cost
        (up to the integer rounding of drive times, 1 ms unless the numbers are huge).
    """

    placements: tuple[Placement, ...]
    unplaced: tuple[Unplaced, ...]
    cost: float
    seconds: float
    status: str

    @property
    def placed(self) -> int:
        """Total number of people placed."""
        return sum(p.people for p in self.placements)


def solve(
    problem: EvacuationProblem, *, time_limit_s: float = 5.0, seed: int = 0
) -> EvacuationPlan:
    """Send as many people as possible to suitable shelters, nearest first overall.

    Network: one supply node per ``(zone, group)`` with ``size`` people; an arc to
    every shelter that suits the group (accessible -> ``accessible`` shelters, pets ->
    ``pets_allowed`` shelters, general -> all) and is reachable with
    ``eta_s <= max_eta_s``, costing the ETA in integer milliseconds per person; each
    shelter -> sink with capacity ``free``. A single commodity is exact because all
    groups share one capacity per shelter and differ only in the arcs they have.

    Every supply node also has an "unplaced" arc straight to the sink at a penalty
    ``P = n_shelters * C_max + 1`` per person (``C_max`` = largest arc cost). An
    augmenting path placing one more person uses at most ``n_shelters`` forward
    shelter arcs, so it costs at most ``P - 1`` and always beats leaving that person
    unplaced: the flow places the maximum number of people, then minimises
    person-seconds. The model is always feasible, so infeasibility is never raised.

    Parameters
    ----------
    problem : EvacuationProblem
        Zones, shelters and drive times in seconds.
    time_limit_s : float, optional
        Accepted for the common solver interface; min-cost flow is exact and
        polynomial, so it is not used. Must be ``> 0``.
    seed : int, optional
        Accepted for the common solver interface; the result is deterministic.

    Returns
    -------
    EvacuationPlan
        Placements, unplaced people with reasons, and the cost in person-seconds.

    Raises
    ------
    ValueError
        If ``eta_s`` does not have shape ``(n_zones, n_shelters)`` or holds NaN or
        negative values, a count is negative, a zone's groups exceed its population,
        ids repeat, or ``max_eta_s`` / ``time_limit_s`` is invalid.
    """
    del seed  # deterministic: nothing to seed
    started = time.perf_counter()
    eta = _validate(problem, time_limit_s)
    sizes = [_group_sizes(z) for z in problem.zones]
    suits = _suitability(problem.shelters)
    usable = np.isfinite(eta) & (eta <= problem.max_eta_s)

    supplies = [
        (zi, gi, size)
        for zi, zone_sizes in enumerate(sizes)
        for gi, size in enumerate(zone_sizes)
        if size > 0
    ]
    flows = _solve_flow(problem, eta, usable, suits, supplies)

    placements: list[Placement] = []
    unplaced: list[Unplaced] = []
    for (zi, gi, size), shelter_flow in zip(supplies, flows, strict=True):
        zone = problem.zones[zi]
        group = GROUPS[gi]
        for sj in sorted(np.flatnonzero(shelter_flow), key=lambda j: (eta[zi, j], j)):
            placements.append(
                Placement(
                    zone_id=zone.id,
                    shelter_id=problem.shelters[sj].id,
                    people=int(shelter_flow[sj]),
                    group=group,
                    eta_s=float(eta[zi, sj]),
                )
            )
        left = size - int(shelter_flow.sum())
        if left > 0:
            reason = _unplaced_reason(eta[zi], usable[zi], suits[gi], group)
            unplaced.append(Unplaced(zone_id=zone.id, group=group, people=left, reason=reason))

    cost = math.fsum(p.people * p.eta_s for p in placements)
    return EvacuationPlan(
        placements=tuple(placements),
        unplaced=tuple(unplaced),
        cost=cost,
        seconds=time.perf_counter() - started,
        status="optimal",
    )


def _solve_flow(
    problem: EvacuationProblem,
    eta: NDArray[np.float64],
    usable: NDArray[np.bool_],
    suits: NDArray[np.bool_],
    supplies: list[tuple[int, int, int]],
) -> list[NDArray[np.int64]]:
    """Run the min-cost flow; return, per supply, the people sent to each shelter."""
    n_supply, n_shelters = len(supplies), len(problem.shelters)
    result = [np.zeros(n_shelters, dtype=np.int64) for _ in supplies]
    if n_supply == 0:
        return result
    sink = n_supply + n_shelters
    total = sum(size for _, _, size in supplies)
    scale = _cost_scale(eta[usable], n_shelters, n_nodes=sink + 1, total_people=total)

    tails: list[int] = []
    heads: list[int] = []
    caps: list[int] = []
    costs: list[int] = []
    for node, (zi, gi, size) in enumerate(supplies):
        for sj in np.flatnonzero(usable[zi] & suits[gi]):
            tails.append(node)
            heads.append(n_supply + int(sj))
            caps.append(size)
            costs.append(round(float(eta[zi, sj]) * scale))
    n_real = len(tails)
    penalty = n_shelters * max(costs, default=0) + 1
    for node, (_, _, size) in enumerate(supplies):
        tails.append(node)
        heads.append(sink)
        caps.append(size)
        costs.append(penalty)
    for j, shelter in enumerate(problem.shelters):
        tails.append(n_supply + j)
        heads.append(sink)
        caps.append(int(shelter.free))
        costs.append(0)

    mcf = min_cost_flow.SimpleMinCostFlow()
    mcf.add_arcs_with_capacity_and_unit_cost(
        np.asarray(tails, dtype=np.int32),
        np.asarray(heads, dtype=np.int32),
        np.asarray(caps, dtype=np.int64),
        np.asarray(costs, dtype=np.int64),
    )
    supply_values = np.zeros(sink + 1, dtype=np.int64)
    supply_values[:n_supply] = [size for _, _, size in supplies]
    supply_values[sink] = -total
    mcf.set_nodes_supplies(np.arange(sink + 1, dtype=np.int32), supply_values)
    status = mcf.solve()
    if status != mcf.OPTIMAL:  # pragma: no cover - the model is always feasible
        raise RuntimeError(f"min-cost flow failed with status {status!r}")

    arc_flows = mcf.flows(np.arange(n_real, dtype=np.int32))
    for arc in np.flatnonzero(arc_flows):
        result[tails[arc]][heads[arc] - n_supply] += int(arc_flows[arc])
    return result


def _cost_scale(
    usable_eta_s: NDArray[np.float64], n_shelters: int, *, n_nodes: int, total_people: int
) -> float:
    """Seconds -> integer cost factor: milliseconds, coarser if int64 could overflow.

    OR-Tools needs ``max_cost * (n_nodes + 1)`` and the total cost to fit in int64;
    the largest cost is the penalty ``~ n_shelters * max_eta * scale``.
    """
    max_eta = float(usable_eta_s.max(initial=0.0))
    if max_eta <= 0.0:
        return _MAX_SCALE
    headroom = _COST_BUDGET / (max(n_nodes + 1, total_people, 1) * (n_shelters + 1))
    return min(_MAX_SCALE, headroom / (max_eta + 1.0))


def _unplaced_reason(
    eta_row: NDArray[np.float64],
    usable_row: NDArray[np.bool_],
    suits_row: NDArray[np.bool_],
    group: str,
) -> str:
    """Explain, from the data, why some of one group of one zone found no place."""
    if not np.isfinite(eta_row).any():
        return REASON_UNREACHABLE
    if not usable_row.any():
        return REASON_BEYOND_MAX_ETA
    if not (usable_row & suits_row).any():
        return REASON_NO_SUITABLE[group]
    return REASON_NO_CAPACITY


def _suitability(shelters: tuple[ShelterSpace, ...]) -> NDArray[np.bool_]:
    """``(len(GROUPS), n_shelters)``: may group ``g`` use shelter ``j``."""
    n = len(shelters)
    return np.array(
        [
            np.ones(n, dtype=bool),
            np.array([s.accessible for s in shelters], dtype=bool),
            np.array([s.pets_allowed for s in shelters], dtype=bool),
        ],
        dtype=bool,
    ).reshape(len(GROUPS), n)


def _group_sizes(zone: Zone) -> tuple[int, int, int]:
    """People per group in ``GROUPS`` order (general, accessible, pets)."""
    population, accessible, pets = (
        int(zone.population),
        int(zone.needs_accessible),
        int(zone.with_pets),
    )
    return population - accessible - pets, accessible, pets


def _validate(problem: EvacuationProblem, time_limit_s: float) -> NDArray[np.float64]:
    """Check the problem; return ``eta_s`` as a float64 array."""
    if not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be > 0, got {time_limit_s!r}")
    if math.isnan(problem.max_eta_s) or problem.max_eta_s < 0:
        raise ValueError(f"max_eta_s must be >= 0, got {problem.max_eta_s!r}")
    n_zones, n_shelters = len(problem.zones), len(problem.shelters)
    eta = np.asarray(problem.eta_s, dtype=np.float64)
    if eta.shape != (n_zones, n_shelters):
        raise ValueError(
            f"eta_s has shape {eta.shape}, expected (n_zones, n_shelters) = "
            f"({n_zones}, {n_shelters})"
        )
    if np.isnan(eta).any():
        raise ValueError("eta_s contains NaN; use inf for unreachable")
    if (eta < 0).any():
        raise ValueError("eta_s contains negative drive times")
    if len({z.id for z in problem.zones}) != n_zones:
        raise ValueError("zone ids must be unique")
    if len({s.id for s in problem.shelters}) != n_shelters:
        raise ValueError("shelter ids must be unique")
    for zone in problem.zones:
        for field in ("population", "needs_accessible", "with_pets"):
            value = operator.index(getattr(zone, field))
            if value < 0:
                raise ValueError(f"zone {zone.id!r}: {field} must be >= 0, got {value}")
        if zone.needs_accessible + zone.with_pets > zone.population:
            raise ValueError(
                f"zone {zone.id!r}: needs_accessible + with_pets "
                f"({zone.needs_accessible} + {zone.with_pets}) exceeds population "
                f"{zone.population} (the groups are disjoint)"
            )
    for shelter in problem.shelters:
        if operator.index(shelter.free) < 0:
            raise ValueError(f"shelter {shelter.id!r}: free must be >= 0, got {shelter.free}")
    return eta
