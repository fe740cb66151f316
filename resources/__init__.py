"""Resources: units (teams and vehicles), stations, shelters, warehouses and their stock,
with positions; models, schemas, service and routes."""
