"""Tests of command/intake/."""
