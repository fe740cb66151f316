"""Coordinates pasted into a search box: recognised, range-checked, formatted back.

Pure (no database, no web). Accepted forms, in degrees:

- ``lon,lat`` (also ``lon lat`` or ``lon;lat``), signed decimals: the API's own order;
- ``lat,lon`` or ``lon,lat`` with hemisphere letters after or before each number:
  ``60.17N 24.94E``, ``N60.17 E24.94``, ``60.17°N, 24.94°E``; the letters say which
  number is which, so either order is read right;
- degrees, minutes and seconds with letters: ``60°10'12"N 24°56'24"E``.

Text that does not look like a coordinate pair gives None (it is a place name); text that
does but is out of range (latitude past 90, minutes past 60, two north letters) raises
:class:`CoordinateError`.
"""

from __future__ import annotations

import math
import re

_NUM = r"\d+(?:\.\d+)?"
# One lettered component's number: decimal degrees, or D° M' S" (minutes and seconds
# optional), with typographic primes accepted as pasted from web pages.
_DMS = (
    rf"(?P<deg{{i}}>{_NUM})\s*(?:[°º]\s*"
    rf"(?:(?P<min{{i}}>{_NUM})\s*['′’]\s*"
    rf"(?:(?P<sec{{i}}>{_NUM})\s*(?:\"|″|''|”)\s*)?)?)?"
)


def _dms(i: int) -> str:
    return _DMS.replace("{i}", str(i))


_SUFFIX = re.compile(
    rf"^\s*{_dms(1)}\s*(?P<h1>[NSEW])\s*[,;]?\s*{_dms(2)}\s*(?P<h2>[NSEW])\s*$", re.IGNORECASE
)
_PREFIX = re.compile(
    rf"^\s*(?P<h1>[NSEW])\s*{_dms(1)}\s*[,;]?\s*(?P<h2>[NSEW])\s*{_dms(2)}\s*$", re.IGNORECASE
)
_BARE = re.compile(
    rf"^\s*(?P<a>[-+]?{_NUM})\s*°?\s*(?:[,;]\s*|\s+)(?P<b>[-+]?{_NUM})\s*°?\s*$",
)


class CoordinateError(ValueError):
    """Text shaped like a coordinate pair whose values are out of range."""


def _degrees(match: re.Match[str], i: int) -> float:
    deg = float(match[f"deg{i}"])
    minutes = float(match[f"min{i}"] or 0)
    seconds = float(match[f"sec{i}"] or 0)
    if minutes >= 60 or seconds >= 60:
        raise CoordinateError("minutes and seconds must be below 60")
    if (match[f"min{i}"] or match[f"sec{i}"]) and deg != int(deg):
        raise CoordinateError("degrees with minutes must be a whole number")
    return deg + minutes / 60 + seconds / 3600


def _lettered(match: re.Match[str]) -> tuple[float, float]:
    lon = lat = math.nan
    for i in (1, 2):
        letter = match[f"h{i}"].upper()
        value = _degrees(match, i) * (-1 if letter in "SW" else 1)
        if letter in "NS":
            if not math.isnan(lat):
                raise CoordinateError("two latitudes (N/S) given; one must be E or W")
            lat = value
        else:
            if not math.isnan(lon):
                raise CoordinateError("two longitudes (E/W) given; one must be N or S")
            lon = value
    return lon, lat


def check_range(lon: float, lat: float) -> tuple[float, float]:
    """``(lon, lat)`` unchanged, or :class:`CoordinateError` when out of range."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise CoordinateError("coordinates must be finite numbers")
    if not -90 <= lat <= 90:
        raise CoordinateError(f"latitude {lat} is out of range [-90, 90]")
    if not -180 <= lon <= 180:
        raise CoordinateError(f"longitude {lon} is out of range [-180, 180]")
    return lon, lat


def parse_coordinates(text: str) -> tuple[float, float] | None:
    """The position ``text`` names, as ``(lon, lat)`` in degrees, or None if it names none.

    Parameters
    ----------
    text : str
        What the caller typed or pasted. Without hemisphere letters the order is
        ``lon,lat`` (the API's convention); with letters, the letters decide.

    Returns
    -------
    tuple of float or None
        ``(lon, lat)`` in the datum the caller used (conversion to WGS-84 is the
        caller's); None when ``text`` is not a coordinate pair.

    Raises
    ------
    CoordinateError
        A coordinate pair out of range, or with contradictory letters.
    """
    if len(text) > 200:
        return None
    for pattern in (_SUFFIX, _PREFIX):
        match = pattern.match(text)
        if match:
            return check_range(*_lettered(match))
    match = _BARE.match(text)
    if match:
        return check_range(float(match["a"]), float(match["b"]))
    return None


def format_decimal(lon: float, lat: float, digits: int = 6) -> str:
    """``lon,lat`` as signed decimals (the form the API reads without letters)."""
    return f"{lon:.{digits}f},{lat:.{digits}f}"


def format_hemisphere(lon: float, lat: float, digits: int = 6, *, prefix: bool = False) -> str:
    """``60.170000N 24.940000E`` (or ``N60.170000 E24.940000`` with ``prefix``)."""
    ns = "S" if lat < 0 else "N"
    ew = "W" if lon < 0 else "E"
    a, b = f"{abs(lat):.{digits}f}", f"{abs(lon):.{digits}f}"
    return f"{ns}{a} {ew}{b}" if prefix else f"{a}{ns} {b}{ew}"


def _dms_text(value: float, letters: str, second_digits: int) -> str:
    scale = 10**second_digits  # whole units of the last printed digit: no "60.000" seconds
    total = round(abs(value) * 3600 * scale)
    deg, rest = divmod(total, 3600 * scale)
    minutes, seconds = divmod(rest, 60 * scale)
    letter = letters[1] if value < 0 else letters[0]
    return f"{deg}°{minutes}'{seconds / scale:.{second_digits}f}\"{letter}"


def format_dms(lon: float, lat: float, second_digits: int = 3) -> str:
    """``60°10'12.000"N 24°56'24.000"E``: degrees, minutes, seconds and letters."""
    return f"{_dms_text(lat, 'NS', second_digits)} {_dms_text(lon, 'EW', second_digits)}"
