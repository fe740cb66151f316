"""Drive times for a simulation, on the live system's road engine.

Positions are road junctions: a call, a station or a hospital is placed at the nearest
junction of the network (the engine's graph is one strongly connected part, so every pair is
reachable). Each station and hospital gets its two whole-network tables once (from it and to
it: PHAST over the contraction hierarchy when no road is closed, Dijkstra otherwise), so the
common questions are one array read:

- a unit at a station to a call: ``from_place(station)[call]``;
- a unit back to its station, or to a hospital: ``to_place(station)[node]``.

A unit on the road (returning, relocating) is somewhere on its fastest path home. Where it is
is found by walking that path down the "to station" table, and its time to a call is bounded
by the tables (``to home + home to call`` above; ``home to call - home to here`` below), so
the one exact search needed, a bounded reverse search from the call, runs only when such a
unit could beat the units already known to be fastest.

Closures (polygons, while active) make every table be rebuilt on the new weights; trips
already under way keep the time they were given when they started.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import shapely
from numba import njit
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from drills.scenario import ScenarioError
from gis.ch import many_to_one
from gis.engine import NO_CLOSURES, Closures, Engine
from gis.graph import FloatArray, IntArray


class Travel:
    """Drive times between junctions, under the closures active now."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        g = engine.graph
        self._tree = cKDTree(engine.project(g.node_lon, g.node_lat))
        self.closures: Closures = NO_CLOSURES
        self._weight: FloatArray = g.edge_time_s
        self._from: dict[int, FloatArray] = {}
        self._to: dict[int, FloatArray] = {}
        self.seconds = 0.0  # wall time spent in searches (the report's "routing" share)
        self.searches = 0

    # --- placing ----------------------------------------------------------------------
    def nodes(
        self,
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        *,
        max_m: float | None = None,
        names: Sequence[str] = (),
        where: str = "",
    ) -> IntArray:
        """The nearest junction of each point; ScenarioError at ``where`` naming the first
        point (``names[k]`` if given) further than ``max_m`` from every junction: a scenario
        for another city, or a point in the sea, gives no silent nonsense."""
        if len(lon) == 0:
            return np.empty(0, dtype=np.int64)
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        dist, idx = self._tree.query(self.engine.project(lon, lat))
        if max_m is not None and float(dist.max()) > max_m:
            k = int(np.argmax(dist > max_m))
            name = names[k] if k < len(names) else f"{where}.{k}"
            raise ScenarioError(
                [(where, f"{name} at {lon[k]:.5f},{lat[k]:.5f} is {dist[k] / 1000:.1f} km from "
                         f"the nearest road of this network (limit {max_m / 1000:.1f} km): is it "
                         "the right city?")]
            )  # fmt: skip
        return np.asarray(idx, dtype=np.int64)

    def lonlat(self, node: int) -> tuple[float, float]:
        g = self.engine.graph
        return float(g.node_lon[node]), float(g.node_lat[node])

    # --- closures -----------------------------------------------------------------------
    def close(self, polygons: Sequence[shapely.Geometry]) -> None:
        """Route around ``polygons`` from now on (an empty list: every road open)."""
        self.closures = Closures(polygons=tuple(polygons)) if polygons else NO_CLOSURES
        self._weight = self.engine.weights(self.closures)
        self._from.clear()
        self._to.clear()

    # --- tables ---------------------------------------------------------------------------
    def _table(self, node: int, reverse: bool) -> FloatArray:
        cache = self._to if reverse else self._from
        table = cache.get(node)
        if table is None:
            started = time.perf_counter()
            weight = None if not self.closures else self._weight
            table, _ = self.engine.node_times(node, reverse=reverse, weight=weight)
            self.seconds += time.perf_counter() - started
            self.searches += 1
            cache[node] = table
        return table

    def from_place(self, node: int) -> FloatArray:
        """Seconds from ``node`` to every junction (cached: stations, hospitals)."""
        return self._table(node, reverse=False)

    def to_place(self, node: int) -> FloatArray:
        """Seconds from every junction to ``node`` (cached: stations, hospitals)."""
        return self._table(node, reverse=True)

    def to_call(self, call: int, origins: IntArray, limit_s: float) -> FloatArray:
        """Exact seconds from each of ``origins`` to ``call`` (``inf`` beyond ``limit_s``):
        over the contraction hierarchy (a point-to-point query per origin) when no road is
        closed, else one reverse search from the call that stops once every origin is
        settled or the limit is passed."""
        started = time.perf_counter()
        if self.engine.ch is not None and not self.closures:
            times = many_to_one(self.engine.ch, origins, call)
            self.seconds += time.perf_counter() - started
            self.searches += 1
            return np.where(times <= limit_s, times, np.inf)
        dist, _ = self.engine.node_times(
            call,
            reverse=True,
            weight=self._weight if self.closures else None,
            limit_s=limit_s,
            stop=np.unique(origins),
        )
        self.seconds += time.perf_counter() - started
        self.searches += 1
        return dist[origins]

    # --- moving units -------------------------------------------------------------------
    def along(self, start: int, goal: int, elapsed_s: float) -> tuple[int, float]:
        """Where a unit driving the fastest path ``start`` -> ``goal`` is after
        ``elapsed_s``: the last junction it has passed and the seconds it still needs to
        reach ``goal`` from there. Walks the path down ``to_place(goal)``."""
        home = self.to_place(goal)
        g = self.engine.graph
        node = _walk(g.fwd_indptr, g.fwd_edge, g.edge_v, self._weight, home, start, goal, elapsed_s)
        return int(node), float(home[node])


@njit(cache=True, nogil=True)
def _walk(indptr, edge, head, weight, home, start, goal, elapsed_s):  # type: ignore[no-untyped-def]
    """Follow, from ``start``, the out-edge on a fastest path to ``goal`` (the one with
    ``weight + home[head]`` least) while the time driven stays within ``elapsed_s``."""
    node = start
    driven = 0.0
    while node != goal:
        best, best_k = np.inf, -1
        for j in range(indptr[node], indptr[node + 1]):
            e = edge[j]
            via = weight[e] + home[head[e]]
            if via < best:
                best, best_k = via, e
        if best_k < 0 or not np.isfinite(best) or driven + weight[best_k] > elapsed_s:
            break
        driven += weight[best_k]
        node = head[best_k]
    return node
