"""Road networks for the drive-time tests: every shared OSM extract, loaded once per run.

The extracts are real third-party data in ``../shared/data/osm`` (see its README); they are
compiled into a per-run cache directory, so the first load parses and later loads are
memory copies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gis.engine import Engine
from gis.network import LoadedNetwork, load_network
from tests.support.osm import EXTRACTS, SMALL, extract_path


@pytest.fixture(scope="session")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graph-cache")


@pytest.fixture(scope="session", params=EXTRACTS)
def network(request: pytest.FixtureRequest, graph_cache: Path) -> LoadedNetwork:
    """One shared extract, compiled with the default emergency profile."""
    return load_network(extract_path(request.param), cache_dir=graph_cache)


@pytest.fixture(scope="session")
def drive_engine(network: LoadedNetwork) -> Engine:
    return Engine(network.graph)


@pytest.fixture(scope="session")
def small_network(graph_cache: Path) -> LoadedNetwork:
    """Aguascalientes (~900 nodes): quick enough for property-based tests."""
    return load_network(extract_path(SMALL), cache_dir=graph_cache)


@pytest.fixture(scope="session")
def small_engine(small_network: LoadedNetwork) -> Engine:
    return Engine(small_network.graph)


@pytest.fixture(scope="session")
def ch_engine(network: LoadedNetwork) -> Engine:
    """The same graph answered through its contraction hierarchy (PHAST) where it can."""
    assert network.ch is not None
    return Engine(network.graph, ch=network.ch)
