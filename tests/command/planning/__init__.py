"""Tests of command/planning/."""
