"""Tests of command/kpis/."""
