"""Drills (演练): simulation runs of a scenario, and tabletop exercises in the real console."""
