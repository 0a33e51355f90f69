"""The map client's page and its starting document, /map/config: what each principal sees and may edit."""

from __future__ import annotations

import pytest

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers import registry
from tests.conftest import bearer


@pytest.fixture(scope="module")
def app(db_url):
    return create_app(Config(), database_url=db_url)


def config_of(app, token: str | None = None) -> dict:
    resp = app.test_client().get("/map/config", headers=bearer(token) if token else {})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    return resp.get_json()


def test_browsers_get_the_map_client_at_root(app):
    client = app.test_client()
    resp = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert '<main id="map"' in page and "/web/src/main.js" in page
    assert "//" not in page.replace("http://", "").split("<body>")[0].replace("/web/", ""), "no CDN in <head>"
    csp = resp.headers.getlist("Content-Security-Policy")
    assert len(csp) == 1 and "script-src 'self'" in csp[0] and "unsafe-eval" not in csp[0]
    # OGC clients still get the landing page, and ?f=html is its HTML form
    assert client.get("/", headers={"Accept": "application/json"}).get_json()["links"]
    assert "г Вологда" in client.get("/?f=html").get_data(as_text=True)
    # the client's own files and its pinned packages are served from this origin
    for path in ("/web/src/main.js", "/web/node_modules/leaflet/dist/leaflet.js",
                 "/web/node_modules/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",
                 "/web/node_modules/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.min.js",
                 "/web/node_modules/chart.js/dist/chart.umd.min.js"):
        assert client.get(path).status_code == 200, path


def test_public_tier_sees_public_layers_and_edits_nothing(app):
    body = config_of(app)
    ids = {layer["id"] for layer in body["layers"]}
    public = {lyr.name for lyr in registry.all_layers() if lyr.access == "public" and lyr.geometry_column}
    assert ids == public
    assert not any(layer["editable"] for layer in body["layers"])
    assert body["home"]["oktmo"] == "19701000", "the demo opens on Vologda"
    buildings = next(layer for layer in body["layers"] if layer["id"] == "buildings")
    assert buildings["render"] == "tiles" and buildings["features"] == 25324
    assert buildings["style"]["by"]["property"] == "floors"
    facilities = next(layer for layer in body["layers"] if layer["id"] == "facilities")
    assert facilities["render"] == "geojson" and facilities["visible"]
    codes = {c["value"] for c in facilities["style"]["by"]["categories"]}
    assert {"school", "kindergarten", "polyclinic"} <= codes
    assert body["basemaps"]["online"] is None and body["basemaps"]["offline"]["tiles"].startswith("/tiles/")


def test_planner_may_edit_master_plan_layers_of_their_city(app, tokens):
    body = config_of(app, tokens["t_city_vologda"])
    editable = {layer["id"] for layer in body["layers"] if layer["editable"]}
    assert editable == {"functional_zones", "planned_facilities", "zoning_zones", "utility_nodes", "utility_lines"}
    assert body["home"]["oktmo"] == "19701000"
    ekb = config_of(app, tokens["t_city_ekb"])["home"]
    assert ekb["oktmo"] == "65701000"
    x0, y0, x1, y1 = ekb["bbox"]  # from its parcels: Ekaterinburg has no boundary loaded
    assert 60 < x0 < x1 < 61.5 and 56.6 < y0 < y1 < 57.1
    analyst = config_of(app, tokens["t_analyst_vologda"])
    assert not any(layer["editable"] for layer in analyst["layers"])
    assert "utility_lines" in {layer["id"] for layer in analyst["layers"]}


def test_online_basemap_is_configured_and_allowed_by_the_csp(db_url):
    app = create_app(Config(basemap_url="https://{s}.tile.example.org/{z}/{x}/{y}.png",
                            basemap_attribution="© example"), database_url=db_url)
    assert config_of(app)["basemaps"]["online"]["url"].startswith("https://{s}.tile.example.org")
    csp = app.test_client().get("/", headers={"Accept": "text/html"}).headers["Content-Security-Policy"]
    assert "img-src 'self' data: blob: https://*.tile.example.org;" in csp


def test_schema_offers_form_constraints(app, tokens):
    client = app.test_client()
    zones = client.get("/collections/functional_zones/schema").get_json()["properties"]
    assert zones["status"]["enum"] == ["existing", "planned", "reconstruction"]
    assert zones["status"]["default"] == "existing"
    assert "residential" in zones["zone_type"]["examples"] and zones["max_floors"]["maximum"] == 200
    planned = client.get("/collections/planned_facilities/schema", headers=bearer(tokens["t_federal"])).get_json()
    assert {"school", "kindergarten"} <= set(planned["properties"]["type_code"]["enum"])


def test_server_enforces_the_schemas_bounds(app, tokens):
    resp = app.test_client().post("/collections/functional_zones/items", headers=bearer(tokens["t_federal"]),
                                  content_type="application/geo+json", json={
                                      "type": "Feature", "properties": {"zone_type": "green", "max_floors": 500},
                                      "geometry": {"type": "Point", "coordinates": [39.88, 59.22]}})
    assert resp.status_code == 400 and "at most 200" in resp.get_json()["description"]
    resp = app.test_client().post("/collections/functional_zones/items", headers=bearer(tokens["t_federal"]),
                                  content_type="application/geo+json", json={
                                      "type": "Feature", "properties": {"zone_type": "green", "status": "dreamt"},
                                      "geometry": {"type": "Point", "coordinates": [39.88, 59.22]}})
    assert resp.status_code == 400 and "must be one of existing, planned" in resp.get_json()["description"]
