"""Coordinate systems used by Chinese map apps, converted to WGS-84.

GCJ-02 ("Mars coordinates") is the obfuscated datum required of maps published in
China; BD-09 is Baidu's further offset of GCJ-02. Both are defined only inside China:
outside it, map apps report plain WGS-84, so coordinates there are returned unchanged.

One implementation: the published forward formulas, and their inverse by fixed-point
iteration (the offsets are smooth and small, so each step gains orders of magnitude) to
1e-9 degrees, about 0.1 mm. The formulas are written once over a math namespace: numpy for
arrays (a GIS import converts half a million points at once), :mod:`math` for one position
(a phone's fix, 20x faster than numpy on a one-element array).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Crs = Literal["wgs84", "gcj02", "bd09"]
CRS_NAMES: tuple[str, ...] = ("wgs84", "gcj02", "bd09")
CHINA_OFFSETS = ("gcj02", "bd09")

FloatArray = NDArray[np.float64]
Transform = Callable[..., tuple[Any, Any]]
# The functions the formulas need, for one position (numpy's are for arrays).
_MATH = SimpleNamespace(
    sin=math.sin, cos=math.cos, sqrt=math.sqrt, radians=math.radians, arctan2=math.atan2
)

_GCJ_A = 6378245.0  # Krasovsky 1940, as the GCJ-02 formula uses it
_GCJ_EE = 0.00669342162296594323
_BD_DLON = 0.0065
_BD_DLAT = 0.006
_EPS = 1e-9  # degrees (about 0.1 mm)


def in_china(lon: FloatArray, lat: FloatArray) -> NDArray[np.bool_]:
    """Where the offsets apply (the box map apps use; outside it they give WGS-84)."""
    return (lat >= 0.8293) & (lat <= 55.8271) & (lon >= 72.004) & (lon <= 137.8347)


def wgs84_to_gcj02(lon: Any, lat: Any, xp: Any = np) -> tuple[Any, Any]:
    """The published GCJ-02 forward formula (no China check): on arrays, or on floats with
    ``xp=_MATH``."""
    x = lon - 105.0
    y = lat - 35.0
    waves = 2 * xp.sin(x * 6 * math.pi) + 2 * xp.sin(x * 2 * math.pi)
    dlat_m = (
        -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * xp.sqrt(abs(x))
        + (waves + 2 * xp.sin(y * math.pi) + 4 * xp.sin(y / 3 * math.pi)
           + 16 * xp.sin(y / 12 * math.pi) + 32 * xp.sin(y / 30 * math.pi)) * 20 / 3
    )  # fmt: skip
    dlon_m = (
        300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * xp.sqrt(abs(x))
        + (waves + 2 * xp.sin(x * math.pi) + 4 * xp.sin(x / 3 * math.pi)
           + 15 * xp.sin(x / 12 * math.pi) + 30 * xp.sin(x / 30 * math.pi)) * 20 / 3
    )  # fmt: skip
    rad = xp.radians(lat)
    magic = 1 - _GCJ_EE * xp.sin(rad) ** 2
    lat_arc = xp.radians((_GCJ_A * (1 - _GCJ_EE)) / magic**1.5)
    lon_arc = xp.radians(_GCJ_A * xp.cos(rad) / xp.sqrt(magic))
    return lon + dlon_m / lon_arc, lat + dlat_m / lat_arc


def gcj02_to_bd09(lon: Any, lat: Any, xp: Any = np) -> tuple[Any, Any]:
    """Baidu's offset of GCJ-02: on arrays, or on floats with ``xp=_MATH``."""
    r = xp.sqrt(lon * lon + lat * lat) + 0.00002 * xp.sin(xp.radians(lat) * 3000)
    theta = xp.arctan2(lat, lon) + 0.000003 * xp.cos(xp.radians(lon) * 3000)
    return r * xp.cos(theta) + _BD_DLON, r * xp.sin(theta) + _BD_DLAT


def wgs84_to_bd09(lon: Any, lat: Any, xp: Any = np) -> tuple[Any, Any]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat, xp), xp)


_FORWARD: dict[str, Transform] = {"gcj02": wgs84_to_gcj02, "bd09": wgs84_to_bd09}


def _worst(delta: Any, xp: Any) -> float:
    return abs(delta) if xp is _MATH else float(np.max(np.abs(delta), initial=0.0))


def _invert(forward: Transform, lon: Any, lat: Any, xp: Any = np) -> tuple[Any, Any]:
    """x with forward(x) = (lon, lat), by fixed-point iteration; arrays, or floats with
    ``xp=_MATH``."""
    x, y = lon, lat
    for _ in range(12):
        fx, fy = forward(x, y, xp)
        dx, dy = fx - lon, fy - lat
        x, y = x - dx, y - dy
        if _worst(dx, xp) < _EPS and _worst(dy, xp) < _EPS:
            break
    return x, y


def _checked(crs: str) -> None:
    if crs != "wgs84" and crs not in CHINA_OFFSETS:
        raise ValueError(f"unknown crs {crs!r}: one of {', '.join(CRS_NAMES)}")


def _inside_china(
    lon: FloatArray, lat: FloatArray, crs: str, convert: Transform
) -> tuple[FloatArray, FloatArray]:
    """``convert`` applied where the offsets apply (``crs`` not wgs84, inside China); the
    other positions as they are."""
    _checked(crs)
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if crs == "wgs84":
        return lon, lat
    inside = in_china(lon, lat)
    out_lon, out_lat = lon.copy(), lat.copy()
    out_lon[inside], out_lat[inside] = convert(lon[inside], lat[inside])
    return out_lon, out_lat


def _undo(crs: str) -> Transform:
    """WGS-84 from an offset datum, on arrays inside China."""

    def undo(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        if crs == "bd09":
            # Two steps, each a small smooth offset: the iteration converges as for one.
            x, y = _invert(gcj02_to_bd09, x, y)
        return _invert(wgs84_to_gcj02, x, y)

    return undo


def to_wgs84_array(lon: FloatArray, lat: FloatArray, crs: str) -> tuple[FloatArray, FloatArray]:
    """WGS-84 from positions in ``crs`` (``wgs84``, ``gcj02`` or ``bd09``); positions
    outside China are returned as they are."""
    return _inside_china(lon, lat, crs, _undo(crs))


def from_wgs84_array(lon: FloatArray, lat: FloatArray, crs: str) -> tuple[FloatArray, FloatArray]:
    """Positions in ``crs`` from WGS-84 (the closed-form direction); outside China unchanged."""
    return _inside_china(lon, lat, crs, lambda x, y: _FORWARD[crs](x, y))


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
    _checked(crs)
    if crs == "wgs84" or not in_china(lon, lat):  # type: ignore[arg-type]
        return lon, lat
    if crs == "bd09":
        lon, lat = _invert(gcj02_to_bd09, lon, lat, _MATH)
    return _invert(wgs84_to_gcj02, lon, lat, _MATH)


def from_wgs84(lon: float, lat: float, crs: Crs) -> tuple[float, float]:
    """Convert one WGS-84 position to ``crs``."""
    _checked(crs)
    if crs == "wgs84" or not in_china(lon, lat):  # type: ignore[arg-type]
        return lon, lat
    out: tuple[float, float] = _FORWARD[crs](lon, lat, _MATH)
    return out
