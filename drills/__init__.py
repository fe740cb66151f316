"""Drills (演练): scenarios on a simulated clock. Empty until issue 17 builds it."""
