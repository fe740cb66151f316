"""Tests of command/incidents/."""
