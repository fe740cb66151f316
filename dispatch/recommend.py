"""Recommend units for one incident: fill its response plan with the fastest suitable units.

Pure: plain dataclasses in, a ranked and explained list out. Every eligible unit gets a rank
and a reason; every unit left out says why (busy, out of service, lacks the capability, no
fresh position, unreachable), so a dispatcher can trust what is and is not on the list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dispatch.assign import Need

ELIGIBLE = frozenset({"available", "returning"})
BUSY = frozenset({"assigned", "en_route", "on_scene"})


@dataclass(frozen=True, slots=True)
class Candidate:
    """A unit as the recommender sees it.

    ``eta_s``/``distance_m`` are the drive from its position to the incident (``inf`` when
    unreachable or not computed); ``position_age_s`` is how old that position is (None: no
    position reported, the home station was used).
    """

    unit_id: int
    callsign: str
    status: str
    capabilities: frozenset[str]
    eta_s: float
    distance_m: float
    position_age_s: float | None = None
    has_position: bool = True


@dataclass(frozen=True, slots=True)
class Ranked:
    unit_id: int
    callsign: str
    rank: int
    eta_s: float
    distance_m: float
    fills: str | None  # the plan line it fills, if recommended
    recommended: bool
    why: str


@dataclass(frozen=True, slots=True)
class Excluded:
    unit_id: int
    callsign: str
    reason: (
        str  # busy | out_of_service | lacks_capability | position_stale | no_position | unreachable
    )
    why: str


@dataclass(frozen=True)
class Shortfall:
    capability: str
    missing: int


@dataclass(frozen=True)
class Recommendation:
    ranked: tuple[Ranked, ...]
    excluded: tuple[Excluded, ...]
    unmet: tuple[Shortfall, ...]

    @property
    def recommended(self) -> tuple[Ranked, ...]:
        return tuple(r for r in self.ranked if r.recommended)


def minutes(seconds: float) -> str:
    """``"3 min 05 s"``: how a dispatcher reads a drive time."""
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


def _exclusion(c: Candidate, needed: set[str], stale_after_s: float) -> Excluded | None:
    if c.status in BUSY:
        return Excluded(c.unit_id, c.callsign, "busy", f"{c.status.replace('_', ' ')} on a task")
    if c.status not in ELIGIBLE:
        return Excluded(c.unit_id, c.callsign, "out_of_service", "out of service")
    if needed and not needed & c.capabilities:
        wanted = ", ".join(sorted(needed))
        return Excluded(c.unit_id, c.callsign, "lacks_capability", f"has none of: {wanted}")
    if not c.has_position:
        return Excluded(c.unit_id, c.callsign, "no_position", "no position and no home station")
    if c.position_age_s is not None and c.position_age_s > stale_after_s:
        age = minutes(c.position_age_s)
        return Excluded(
            c.unit_id, c.callsign, "position_stale", f"last position {age} old (limit "
            f"{minutes(stale_after_s)}): confirm where it is before sending it",
        )  # fmt: skip
    if not math.isfinite(c.eta_s):
        return Excluded(c.unit_id, c.callsign, "unreachable", "no open road to the incident")
    return None


def outstanding(plan: Sequence[Need], sent: Sequence[frozenset[str]]) -> list[Need]:
    """What ``plan`` still needs once the units already sent to the incident are counted.

    Each sent unit (its capabilities) fills the first line, in plan order, that it matches
    and that is still open; a unit matching none fills nothing. A second call about the same
    fire then recommends only what the first dispatch left unfilled.
    """
    left = [line.count for line in plan]
    for caps in sent:
        for i, line in enumerate(plan):
            if left[i] > 0 and line.capability in caps:
                left[i] -= 1
                break
    return [Need(line.capability, n) for line, n in zip(plan, left, strict=True) if n > 0]


def recommend(
    plan: Sequence[Need],
    candidates: Sequence[Candidate],
    *,
    stale_after_s: float = 900.0,
    limit: int = 10,
    sent: Sequence[frozenset[str]] = (),
) -> Recommendation:
    """Fill ``plan`` line by line with the fastest eligible units, then rank the rest.

    Parameters
    ----------
    plan : sequence of Need
        What the incident needs, in the plan's order (first lines fill first). Empty: the
        single fastest eligible unit is recommended.
    candidates : sequence of Candidate
        Every unit; drive times in seconds, distances in metres.
    stale_after_s : float
        A position older than this is not used (the unit is listed as excluded).
    limit : int
        Ranked entries to return besides the recommended ones.
    sent : sequence of frozenset of str
        The capabilities of the units already on their way (active tasks on the incident):
        only what they leave unfilled is recommended (see ``outstanding``); with no plan,
        one unit sent means nothing more is recommended.
    """
    needed = {line.capability for line in plan}
    first_unit = not plan and not sent
    plan = outstanding(plan, sent)
    excluded: list[Excluded] = []
    eligible: list[Candidate] = []
    for c in candidates:
        reason = _exclusion(c, needed, stale_after_s)
        if reason is None:
            eligible.append(c)
        else:
            excluded.append(reason)
    eligible.sort(key=lambda c: (c.eta_s, c.unit_id))
    picked: dict[int, tuple[str, str]] = {}  # unit id -> (fills, why)
    unmet: list[Shortfall] = []
    for line in plan:
        got = 0
        for c in eligible:
            if got == line.count:
                break
            if c.unit_id in picked or line.capability not in c.capabilities:
                continue
            got += 1
            why = f"fastest with {line.capability} ({got} of {line.count}): {minutes(c.eta_s)}"
            if c.status == "returning":
                why += ", returning from a task"
            if c.position_age_s is None:
                why += ", from its home station (no position reported)"
            picked[c.unit_id] = (line.capability, why)
        if got < line.count:
            unmet.append(Shortfall(line.capability, line.count - got))
    if first_unit and eligible:
        picked[eligible[0].unit_id] = (
            "",
            f"fastest unit, no response plan: {minutes(eligible[0].eta_s)}",
        )
    chosen = [c for c in eligible if c.unit_id in picked]
    rest = [c for c in eligible if c.unit_id not in picked][: max(0, limit)]
    ranked: list[Ranked] = []
    for c in chosen:
        fills, why = picked[c.unit_id]
        ranked.append(Ranked(c.unit_id, c.callsign, len(ranked) + 1, c.eta_s, c.distance_m,
                             fills or None, True, why))  # fmt: skip
    for c in rest:
        useful = sorted(needed & c.capabilities)
        why = f"standby: {minutes(c.eta_s)}" + (f", has {', '.join(useful)}" if useful else "")
        ranked.append(Ranked(c.unit_id, c.callsign, len(ranked) + 1, c.eta_s, c.distance_m,
                             None, False, why))  # fmt: skip
    return Recommendation(tuple(ranked), tuple(excluded), tuple(unmet))
