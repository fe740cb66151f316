"""The drill benchmark's scenarios, built from a road graph with fixed seeds (bench.drills).

- ``porto``: a city of 63k junctions for a day: about 2,000 incidents of three types over
  the city, 300 units of three kinds at 40 stations, six hospitals;
- ``jemss``: a JEMSS-sized city (Columbus) for a year: 280 calls a day, 16 ambulances at 14
  stations, transport to the city's 5 hospitals;
- ``textbook``: the same city, fleet and call rate with nothing a textbook SimPy model leaves
  out: one unit per call, no transport, fixed turnout (the SimPy peer runs it too).

Stations (and Porto's hospitals) sit at road junctions: k-means (fixed seed) over the
junctions' coordinates, each centre moved to its nearest junction. Incidents come from
Poisson generators over a grid of cells covering the network, each cell weighted by the
junctions in it (a proxy for where people and streets are), with an hourly profile.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree

from drills import scenario as sc
from gis.graph import RoadGraph

SEED = 20_261_206
START = "2026-07-01T00:00:00+01:00"
CELL_KM = 1.5  # incident cells: a call is at most ~2.1 km from a junction of its cell
# calls per hour over the day (mean 1): quiet at night, busy from late morning to evening
HOURLY = [0.55, 0.5, 0.45, 0.42, 0.42, 0.48, 0.62, 0.85, 1.05, 1.2, 1.3, 1.33,
          1.33, 1.3, 1.28, 1.27, 1.27, 1.26, 1.22, 1.16, 1.08, 0.98, 0.85, 0.7]  # fmt: skip
HOURLY = [round(h * 24 / sum(HOURLY), 4) for h in HOURLY]


def _xy(graph: RoadGraph) -> np.ndarray:
    """Junctions on a local plane (km): good enough for clustering a city."""
    lat0 = float(np.mean(graph.node_lat))
    return np.column_stack(
        (graph.node_lon * 111.32 * np.cos(np.radians(lat0)), graph.node_lat * 110.57)
    )


def junction_sites(graph: RoadGraph, k: int, seed: int) -> list[tuple[float, float]]:
    """``k`` sites spread over the network: k-means centres, each snapped to a junction."""
    xy = _xy(graph)
    centres, _ = kmeans2(xy, k, seed=np.random.default_rng(seed), minit="++", iter=30)
    _, nodes = cKDTree(xy).query(centres)
    return [(round(float(graph.node_lon[n]), 7), round(float(graph.node_lat[n]), 7)) for n in nodes]


def cells(graph: RoadGraph, size_km: float = CELL_KM) -> list[dict[str, Any]]:
    """Weighted polygons covering the network: a grid of ``size_km`` cells over its bbox,
    each weighted by its junctions (cells with none left out, so every call is within a
    cell's diagonal of a road)."""
    lon, lat = graph.node_lon, graph.node_lat
    xy = _xy(graph)
    nx = max(1, math.ceil(float(np.ptp(xy[:, 0])) / size_km))
    ny = max(1, math.ceil(float(np.ptp(xy[:, 1])) / size_km))
    x = np.linspace(float(lon.min()), float(lon.max()), nx + 1)
    y = np.linspace(float(lat.min()), float(lat.max()), ny + 1)
    counts, _, _ = np.histogram2d(lon, lat, bins=(x, y))
    out = []
    for i, j in zip(*np.nonzero(counts), strict=True):
        x0, x1, y0, y1 = (round(float(v), 7) for v in (x[i], x[i + 1], y[j], y[j + 1]))
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        poly = {"type": "Polygon", "coordinates": [ring]}
        out.append({"polygon": poly, "weight": float(counts[i, j])})
    return out


def _stations(sites: list[tuple[float, float]]) -> list[dict[str, Any]]:
    return [{"name": f"S{k + 1:02d}", "lon": x, "lat": y} for k, (x, y) in enumerate(sites)]


def _gen(type_: str, severity: str, per_day: float, polys: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": type_, "severity": severity, "rate_per_h": round(per_day / 24, 6),
            "hourly_profile": HOURLY, "polygons": polys}  # fmt: skip


def _lognormal(mean: float, sd: float) -> dict[str, Any]:
    return {"dist": "lognormal", "mean": mean, "sd": sd}


def _line(capability: str, count: int = 1) -> dict[str, Any]:
    return {"capability": capability, "count": count}


PORTO_KINDS = (  # (callsign prefix, type, capabilities, how many)
    ("A", "ambulance", ["medical_bls"], 120),
    ("M", "ambulance", ["medical_bls", "medical_als"], 40),
    ("E", "fire_engine", ["fire_suppression", "rescue"], 100),
    ("L", "ladder", ["ladder", "rescue"], 40),
)


def porto(graph: RoadGraph, *, hours: float = 24, incidents_per_day: float = 2000,
          replications: int = 1) -> sc.Scenario:  # fmt: skip
    """The Porto day (see the module's doc)."""
    stations = _stations(junction_sites(graph, 40, SEED))
    units = []
    for prefix, type_, caps, count in PORTO_KINDS:
        for k in range(count):
            home = stations[(len(units) * 7) % len(stations)]["name"]  # kinds spread evenly
            units.append({"callsign": f"{prefix}{k + 1:03d}", "type": type_,
                          "capabilities": caps, "station": home})  # fmt: skip
    hospitals = [
        {"name": f"H{k + 1}", "lon": x, "lat": y}
        for k, (x, y) in enumerate(junction_sites(graph, 6, SEED + 1))
    ]
    polys = cells(graph)
    n = incidents_per_day
    return sc.parse({
        "name": "porto-day", "start": START, "duration_s": hours * 3600, "seed": SEED,
        "replications": replications, "policies": ["nearest"],
        "targets": {"response_s": 900, "by_type": {"fire": 600}},
        "stations": stations, "units": units, "hospitals": hospitals,
        "response_plans": {
            "medical": {"moderate": [_line("medical_bls")],
                        "severe": [_line("medical_als"), _line("medical_bls")]},
            "fire": {"moderate": [_line("fire_suppression", 2)],
                     "severe": [_line("fire_suppression", 3), _line("ladder")]},
            "traffic": {"moderate": [_line("rescue"), _line("medical_bls")]},
        },
        "generators": [
            _gen("medical", "moderate", 0.50 * n, polys),
            _gen("medical", "severe", 0.20 * n, polys),
            _gen("fire", "moderate", 0.09 * n, polys), _gen("fire", "severe", 0.03 * n, polys),
            _gen("traffic", "moderate", 0.18 * n, polys),
        ],
        "service": {
            "dispatch_delay_s": _lognormal(60, 30), "turnout_s": _lognormal(90, 30),
            "on_scene_s": _lognormal(1500, 900), "transport_probability": 0.5,
            "handover_s": _lognormal(900, 300),
        },
    })  # fmt: skip


def columbus_hospitals(stations_geojson: Path) -> list[dict[str, Any]]:
    """The hospitals of the committed Columbus data (data/columbus/stations.geojson)."""
    features = json.loads(stations_geojson.read_text(encoding="utf-8"))["features"]
    return [
        {"name": f["properties"]["name"], "lon": f["geometry"]["coordinates"][0],
         "lat": f["geometry"]["coordinates"][1]}
        for f in features if f["properties"]["kind"] == "hospital"
    ]  # fmt: skip


def _jemss_fleet(graph: RoadGraph) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    stations = _stations(junction_sites(graph, 14, SEED))
    units = [{"callsign": f"A{k + 1:02d}", "type": "ambulance", "capabilities": ["medical_bls"],
              "station": stations[k % 14]["name"]} for k in range(16)]  # fmt: skip
    return stations, units


def jemss(graph: RoadGraph, hospitals: list[dict[str, Any]], *, days: float = 365,
          policies: tuple[str, ...] = ("nearest",)) -> sc.Scenario:  # fmt: skip
    """The JEMSS-sized year (see the module's doc)."""
    stations, units = _jemss_fleet(graph)
    polys = cells(graph)
    return sc.parse({
        "name": "jemss-year", "start": START, "duration_s": days * 86_400, "seed": SEED,
        "policies": list(policies), "targets": {"response_s": 600},
        "stations": stations, "units": units, "hospitals": hospitals,
        "response_plans": {"medical": {"moderate": [_line("medical_bls")],
                                       "severe": [_line("medical_bls")]}},
        "generators": [_gen("medical", "moderate", 210, polys),
                       _gen("medical", "severe", 70, polys)],
        "service": {
            "dispatch_delay_s": _lognormal(45, 20), "turnout_s": {"dist": "fixed", "value": 60},
            "on_scene_s": _lognormal(900, 400), "transport_probability": 0.6,
            "handover_s": _lognormal(600, 240),
        },
    })  # fmt: skip


def textbook(graph: RoadGraph, *, days: float = 365) -> sc.Scenario:
    """The JEMSS city with only what the textbook model has (see the module's doc)."""
    stations, units = _jemss_fleet(graph)
    return sc.parse({
        "name": "textbook-year", "start": START, "duration_s": days * 86_400, "seed": SEED + 2,
        "policies": ["nearest"], "targets": {"response_s": 600},
        "stations": stations, "units": units, "response_plans": {},
        "generators": [_gen("medical", "moderate", 280, cells(graph))],
        "service": {
            "dispatch_delay_s": {"dist": "fixed", "value": 30},
            "turnout_s": {"dist": "fixed", "value": 60},
            "on_scene_s": {"dist": "exponential", "mean": 900},
        },
    })  # fmt: skip
