"""The incidents room: an incident's lifecycle (reported to closed), its table, shapes and
routes."""
