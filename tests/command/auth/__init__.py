"""Tests of command/auth/."""
