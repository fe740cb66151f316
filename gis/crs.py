"""Coordinate systems used by Chinese map apps, converted to WGS-84.

GCJ-02 ("Mars coordinates") is the obfuscated datum required of maps published in
China; BD-09 is Baidu's further offset of GCJ-02. Both are defined only inside China:
outside it, map apps report plain WGS-84, so coordinates there are returned unchanged.
The exact inverse is iterative (``prcoords``'s ``*_bored`` functions, error < 1e-9 deg).
"""

from __future__ import annotations

from typing import Literal

import prcoords

Crs = Literal["wgs84", "gcj02", "bd09"]
CRS_NAMES: tuple[str, ...] = ("wgs84", "gcj02", "bd09")


def _in_china(lon: float, lat: float) -> bool:
    return bool(prcoords.sanity_in_china_p(prcoords.Coords(lat, lon)))


def to_wgs84(lon: float, lat: float, crs: Crs) -> tuple[float, float]:
    """Convert one position to WGS-84.

    Parameters
    ----------
    lon, lat : float
        Position in degrees, in ``crs``.
    crs : {"wgs84", "gcj02", "bd09"}
        The datum the position was given in.

    Returns
    -------
    tuple of float
        ``(lon, lat)`` in WGS-84 degrees.
    """
    if crs == "wgs84" or not _in_china(lon, lat):
        return lon, lat
    if crs == "gcj02":
        out = prcoords.gcj_wgs_bored((lat, lon))
    elif crs == "bd09":
        out = prcoords.bd_wgs_bored((lat, lon))
    else:  # pragma: no cover - Literal guards this
        raise ValueError(f"unknown crs {crs!r}")
    return float(out.lon), float(out.lat)


def from_wgs84(lon: float, lat: float, crs: Crs) -> tuple[float, float]:
    """Convert one WGS-84 position to ``crs`` (the forward, closed-form direction)."""
    if crs == "wgs84" or not _in_china(lon, lat):
        return lon, lat
    if crs == "gcj02":
        out = prcoords.wgs_gcj((lat, lon))
    elif crs == "bd09":
        out = prcoords.wgs_bd((lat, lon))
    else:  # pragma: no cover
        raise ValueError(f"unknown crs {crs!r}")
    return float(out.lon), float(out.lat)
