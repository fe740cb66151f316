"""Tests of command/zones/."""
