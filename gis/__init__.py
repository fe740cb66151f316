"""gis package."""
