"""Helpers shared by the tests and the benchmarks: plain functions, classes and constants.

Fixtures stay in the ``conftest.py`` files; what they, the test modules and ``bench/`` have
in common lives here, so that no test module imports another one and ``bench/`` imports
nothing from ``tests/`` but this package (tests/test_layout.py checks both).

- ``db``: throwaway PostGIS databases and the skip-or-fail policy when there is none;
- ``world``: the tests' secret key and password, the ``world`` fixture's city, GeoJSON;
- ``servers``: free ports, the app in a uvicorn thread, the real server in a subprocess;
- ``cap``: CAP alerts as a warning system writes them, and the shared CAP files;
- ``alert_traffic``: realistic alert traffic (the alerts benchmark's generator);
- ``cli``: the ``emergency`` CLI run in-process;
- ``live``: committed databases, WebSocket clients and REST steps for the realtime tests;
- ``browser``: Chromium settings and page helpers for the screen tests;
- ``osm``: the shared OSM extracts;
- ``marks``: which fixtures mean "needs the database" (the ``db`` marker).
"""
