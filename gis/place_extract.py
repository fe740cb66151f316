"""Places to search for, read from an OSM file: addresses, streets and named places.

Pure (no database): :func:`extract_places` reads the same files the road loader reads
(.osm, .osm.bz2, .osm.pbf, through pyosmium with node locations on ways) and returns
:class:`PlaceRecord` rows; :mod:`gis.place_index` writes them into PostGIS. Ways are placed
at the mean of their nodes (buildings, squares); a street, one record per distinct name,
at the vertex of its ways nearest to the mean of all their vertices, so the point lies on
the street. Relations (multipolygon buildings, routes) are not read.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import osmium

from gis.osm_io import Progress

# Which tag makes a named object a place, in order of precedence, and how its kind reads:
# the tag's value ("hospital", "museum"), or a fixed word where values are too many to be
# useful ("shop", "office", "building").
_VALUE_KINDS = ("amenity", "tourism", "leisure", "place", "historic", "aeroway")
_FIXED_KINDS = (("shop", "shop"), ("office", "office"), ("craft", "craft"))
_STATIONS = {"station", "halt", "tram_stop", "subway_entrance"}
_STOPS = ("bus_stop", "platform")  # highway values that are stops, not streets
# Other names folded into the search text (translations and alternatives).
_NAME_KEYS = ("alt_name", "old_name", "official_name", "short_name", "loc_name", "int_name")
MAX_NAME = 300


@dataclass(frozen=True)
class PlaceRecord:
    """One searchable place: WGS-84 degrees, the OSM object it came from."""

    name: str
    kind: str  # "address", "street", or a place kind ("hospital", "station", "shop", ...)
    search: str  # folded name and other names (see :func:`fold`)
    lon: float
    lat: float
    osm_type: str  # "n" node, "w" way
    osm_id: int


def fold(text: str) -> str:
    """Lower case without accents and with single spaces: what search text is compared as.

    NFKD splits accented letters into letter + mark and maps full-width forms to plain
    ones; the marks are dropped, so ``Töölö`` and ``toolo`` compare equal. CJK characters
    pass through unchanged.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(kept.casefold().split())


def place_kind(tags: osmium.osm.TagList) -> str | None:
    """The kind of a named object, or None when it is not a place worth finding."""
    for key in _VALUE_KINDS:
        value = tags.get(key)
        if value and value != "no":
            return value
    for key, kind in _FIXED_KINDS:
        if tags.get(key):
            return kind
    if tags.get("railway") in _STATIONS or tags.get("public_transport") == "station":
        return "station"
    if (
        tags.get("public_transport") in ("stop_position", "platform")
        or tags.get("highway") in _STOPS
    ):
        return "stop"
    building = tags.get("building")
    if building and building != "no":
        return "building"
    return None


def _search_text(name: str, tags: osmium.osm.TagList) -> str:
    names = [name]
    for tag in tags:
        if (tag.k.startswith("name:") or tag.k in _NAME_KEYS) and tag.v not in names:
            names.append(tag.v)
    return fold(" ".join(names))[: 4 * MAX_NAME]


def _address(tags: osmium.osm.TagList) -> tuple[str, str] | None:
    number, street = tags.get("addr:housenumber"), tags.get("addr:street")
    if not number or not street:
        return None
    name = f"{street} {number}"
    town = " ".join(v for v in (tags.get("addr:postcode"), tags.get("addr:city")) if v)
    if town:
        name = f"{name}, {town}"
    return name[:MAX_NAME], fold(name)


class _Streets:
    """Vertices of named highways, gathered per name until every way is read."""

    def __init__(self) -> None:
        self.points: dict[str, list[tuple[float, float]]] = {}
        self.first: dict[str, tuple[int, str]] = {}  # name -> (way id, search text)

    def add(self, name: str, way_id: int, search: str, coords: list[tuple[float, float]]) -> None:
        if name not in self.points:
            self.points[name] = []
            self.first[name] = (way_id, search)
        self.points[name].extend(coords)

    def records(self) -> list[PlaceRecord]:
        out = []
        for name, coords in self.points.items():
            mean_lon = sum(c[0] for c in coords) / len(coords)
            mean_lat = sum(c[1] for c in coords) / len(coords)
            lon, lat = min(coords, key=lambda c: (c[0] - mean_lon) ** 2 + (c[1] - mean_lat) ** 2)
            way_id, search = self.first[name]
            out.append(PlaceRecord(name, "street", search, lon, lat, "w", way_id))
        return out


def _way_coords(way: osmium.osm.Way) -> list[tuple[float, float]]:
    coords = [(n.location.lon, n.location.lat) for n in way.nodes if n.location.valid()]
    if len(coords) > 1 and coords[0] == coords[-1]:
        coords.pop()  # a closed ring: the first node would count twice in the mean
    return coords


def _records_of(
    name: str | None, tags: osmium.osm.TagList, lon: float, lat: float, osm: tuple[str, int]
) -> list[PlaceRecord]:
    out = []
    address = _address(tags)
    if address is not None:
        out.append(PlaceRecord(address[0], "address", address[1], lon, lat, *osm))
    kind = place_kind(tags) if name else None
    if name and kind:
        out.append(PlaceRecord(name[:MAX_NAME], kind, _search_text(name, tags), lon, lat, *osm))
    return out


def extract_places(path: Path | str, *, progress: Progress | None = None) -> list[PlaceRecord]:
    """Every address, named street and named place in an OSM file.

    Parameters
    ----------
    path : Path or str
        An ``.osm``, ``.osm.bz2`` or ``.osm.pbf`` file.
    progress : callable, optional
        Called with ``("places", records so far)`` every 5,000 records.

    Returns
    -------
    list of PlaceRecord
        Addresses (``addr:housenumber`` + ``addr:street``, with ``addr:postcode`` and
        ``addr:city`` when present), one ``street`` per distinct highway name, and named
        nodes and ways with a place tag (see :func:`place_kind`). Positions WGS-84.
    """
    records: list[PlaceRecord] = []
    streets = _Streets()
    fp = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    for obj in fp:
        tags = obj.tags
        if len(tags) == 0:
            continue
        name = tags.get("name")
        if isinstance(obj, osmium.osm.Node):
            if not obj.location.valid():
                continue
            osm = ("n", obj.id)
            found = _records_of(name, tags, obj.location.lon, obj.location.lat, osm)
        elif isinstance(obj, osmium.osm.Way):
            coords = _way_coords(obj)
            if not coords:
                continue  # clipped at the extract's edge: none of its nodes is in the file
            highway = tags.get("highway")
            if name and highway and tags.get("area") != "yes" and highway not in _STOPS:
                streets.add(name[:MAX_NAME], obj.id, _search_text(name, tags), coords)
                name = None  # a street is found through its street record
            lon = sum(c[0] for c in coords) / len(coords)
            lat = sum(c[1] for c in coords) / len(coords)
            found = _records_of(name, tags, lon, lat, ("w", obj.id))
        else:
            continue
        records.extend(found)
        if progress and found and len(records) % 5000 < len(found):
            progress("places", len(records))
    records.extend(streets.records())
    return records
