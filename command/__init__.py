"""command package."""
