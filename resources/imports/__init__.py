"""Import resources from a city's own GIS files (``emergency import``, ``POST /api/import``)."""
