"""Tests of command/tasks/."""
