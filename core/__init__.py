"""Shared kernel: configuration, database and domain errors."""
