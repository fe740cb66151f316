"""`emergency drill start SCENARIO.yaml --live` and `emergency drill stop ID` (tabletop)."""

from __future__ import annotations
