"""The exports room: GIS files for analysts (GeoPackage, GeoJSON, CSV) of incidents with
their stage times, tasks, unit tracks and fixes, warning zones, shelters and KPIs by area,
written with geopandas (pyogrio); personal data never, drill data only when asked."""
