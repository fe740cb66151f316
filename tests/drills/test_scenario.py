"""Scenario files: a valid one reads with its defaults; every fault is named where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drills import scenario as sc
from tests.support.drills import BOX, scenario_dict


def problems(data: Any) -> dict[str, str]:
    with pytest.raises(sc.ScenarioError) as caught:
        sc.parse(data)
    return dict(caught.value.problems)


def test_a_valid_scenario_reads_with_defaults() -> None:
    s = sc.parse(scenario_dict())
    assert s.network == "loaded"
    assert s.policies == ["nearest"]
    assert s.service.dispatch_delay_s.mean_s == 0
    assert s.service.on_scene_s.mean_s == 1200
    assert s.plan_interval_s == 30
    assert s.start.utcoffset() is not None and s.start.utcoffset().total_seconds() == 3 * 3600
    assert s.expected_incidents() == pytest.approx((2.0 + 0.3) * 24)


def test_every_problem_is_named_with_its_place() -> None:
    data = scenario_dict(duration_s=-1, policies=["nearest", "teleport"])
    data["generators"][0]["rate_per_h"] = -2
    data["service"] = {"on_scene_s": {"dist": "exponential", "mean": 0}}
    found = problems(data)
    assert "duration_s" in found
    assert "policies.1" in found
    assert "generators.0.rate_per_h" in found
    assert any(k.startswith("service.on_scene_s") for k in found)


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"start": "2026-07-01T08:00:00"}, "start", "UTC offset"),
        ({"policies": ["nearest", "nearest"]}, "policies", "each policy once"),
        ({"bogus": 1}, "bogus", "Extra inputs"),
        ({"warmup_s": 86_400}, "", "warmup_s must be shorter"),
        ({"generators": []}, "", "no incidents"),
    ],
)
def test_bad_fields_are_refused(change: dict[str, Any], where: str, says: str) -> None:
    found = problems(scenario_dict(**change))
    assert where in found, found
    assert says in found[where]


def test_a_generator_needs_exactly_one_place() -> None:
    data = scenario_dict()
    data["generators"][0]["points"] = [[24.9, 60.1]]  # and a polygon already
    assert "exactly one of points, polygon" in problems(data)["generators.0"]


def test_an_invalid_polygon_is_refused() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    data = scenario_dict()
    data["generators"][0]["polygon"] = bowtie
    found = problems(data)
    assert any("invalid polygon" in v for v in found.values()), found


def test_out_of_range_coordinates_are_refused() -> None:
    data = scenario_dict()
    data["stations"][0]["lat"] = 95
    assert "stations.0.lat" in problems(data)


def test_units_must_name_listed_stations() -> None:
    data = scenario_dict()
    data["units"][0]["station"] = "Nowhere"
    assert "Nowhere" in problems(data)[""]


def test_an_hourly_profile_has_24_values() -> None:
    data = scenario_dict()
    data["generators"][0]["hourly_profile"] = [1.0] * 23
    assert "24 hourly" in problems(data)["generators.0.hourly_profile"]


def test_yaml_with_python_tags_or_garbage_is_refused() -> None:
    with pytest.raises(sc.ScenarioError, match="not valid YAML"):
        sc.loads("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(sc.ScenarioError, match="mapping"):
        sc.loads("- just\n- a list\n")
    with pytest.raises(sc.ScenarioError, match="larger than"):
        sc.loads("x" * (sc.MAX_BYTES + 1))


def test_file_paths_are_resolved_and_kept_out_of_reports(tmp_path: Path) -> None:
    (tmp_path / "calls.csv").write_text("time,lon,lat\n10,24.94,60.17\n")
    data = scenario_dict(
        generators=[{"type": "medical", "csv": "calls.csv"}], network="city.osm.pbf"
    )
    path = tmp_path / "s.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    s = sc.load(path)
    assert s.generators[0].csv == str(tmp_path / "calls.csv")
    assert s.network == str(tmp_path / "city.osm.pbf")
    public = sc.public(s)
    assert public["generators"][0]["csv"] == "calls.csv"
    assert public["network"] == "city.osm.pbf"
    assert str(tmp_path) not in repr(public)


def test_a_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(sc.ScenarioError, match="cannot read"):
        sc.load(tmp_path / "nope.yaml")


def test_polygons_weighted() -> None:
    data = scenario_dict()
    data["generators"][0] = {
        "type": "medical",
        "rate_per_h": 1,
        "polygons": [{"polygon": BOX, "weight": 0}],
    }
    assert "generators.0.polygons.0.weight" in problems(data)
