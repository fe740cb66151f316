from tests.support.world import World, point


def test_create_incident_and_read_back(client, world: World):
    body = {
        "type": "Feature",
        "geometry": point(24.95, 60.17),
        "properties": {"title": "Kitchen fire", "type": "fire", "severity": "severe"},
    }
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 201, r.text
    got = client.get(f"/api/incidents/{r.json()['id']}", headers=world.h("commander")).json()
    assert got["geometry"] == {"type": "Point", "coordinates": [24.95, 60.17]}
    assert got["properties"]["status"] == "reported"
    assert got["properties"]["reported_by"] == "user:dispatcher"
