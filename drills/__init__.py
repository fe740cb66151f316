"""drills package."""
