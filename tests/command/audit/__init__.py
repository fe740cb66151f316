"""Tests of command/audit/."""
