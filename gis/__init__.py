"""Roads and maps: OSM files read into a road graph, the drive-time engine (Dijkstra,
contraction hierarchies, closures), geodesy and datum conversion (GCJ-02, BD-09), GeoJSON
checks, vector tiles and the routing routes. Knows nothing of incidents or units."""
