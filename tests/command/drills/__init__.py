"""Tests of command/drills (the drills room: runs, tabletop, fleet)."""
