"""Analysis results as layers: walk_access and service_provision, recomputed by the `analysis-layers` process
(a job) and served by the OGC API and vector tiles like any layer."""

from __future__ import annotations

import time

import mapbox_vector_tile
import morecantile
import pytest
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from tests.conftest import bearer, scalar

VOLOGDA = "19701000"


@pytest.fixture(scope="module")
def app(db_url):
    return create_app(Config(), database_url=db_url)


def run_job(client, token: str, inputs: dict) -> dict:
    resp = client.post("/processes/analysis-layers/execution", json={"inputs": inputs, "response": "document"},
                       headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    location = resp.headers["Location"]
    for _ in range(300):
        status = client.get(location, headers=bearer(token)).get_json()
        if status["status"] in ("successful", "failed", "dismissed"):
            break
        time.sleep(0.1)
    assert status["status"] == "successful", status
    return client.get(f"{location}/results", headers=bearer(token)).get_json()


@pytest.fixture(scope="module")
def computed(app, tokens):
    return run_job(app.test_client(), tokens["t_city_vologda"], {"territory": VOLOGDA})


def test_walk_access_matches_the_nearest_facility_process(app, engine, computed):
    homes = scalar(engine, "SELECT count(*) FROM cdt.buildings b JOIN cdt.territories t ON t.id = b.territory_id "
                           "WHERE t.oktmo = :o AND (b.is_living OR b.residents > 0)", o=VOLOGDA)
    assert computed["summary"]["walk_access"]["buildings"] == homes
    assert scalar(engine, "SELECT count(*) FROM cdt.walk_access") == homes
    # every building's minutes equal the nearest-facility process's seconds / 60
    client = app.test_client()
    for kind in ("school", "kindergarten"):
        out = client.post("/processes/nearest-facility/execution", json={
            "inputs": {"facility_type": kind, "territory": VOLOGDA}, "response": "document"}).get_json()
        seconds = {b["id"]: b["seconds"] for b in out["buildings"]}
        stored = dict(engine.connect().execute(text(f"SELECT building_id, {kind}_min FROM cdt.walk_access")).all())
        assert stored.keys() == seconds.keys()
        for bid, minutes in stored.items():
            if seconds[bid] is None:
                assert minutes is None
            else:
                assert minutes == pytest.approx(seconds[bid] / 60, abs=0.01)
    # the score is the 15-minute-score process's, building by building
    scores = client.post("/processes/fifteen-minute-score/execution", json={
        "inputs": {"territory": VOLOGDA}, "response": "document"}).get_json()["buildings"]
    stored = dict(engine.connect().execute(text("SELECT building_id, score_15min FROM cdt.walk_access")).all())
    assert all(stored[s["id"]] == pytest.approx(s["score"], abs=0.05) for s in scores)
    # polyclinics, pharmacies, stops and parks are not in the demo data: null minutes, said so
    assert set(computed["summary"]["walk_access"]["missing"]) == {"polyclinic", "pharmacy", "stop", "park"}
    assert scalar(engine, "SELECT count(*) FROM cdt.walk_access WHERE pharmacy_min IS NOT NULL") == 0


def test_service_provision_matches_the_needs_process(app, engine, computed):
    client = app.test_client()
    for kind in ("kindergarten", "school"):
        out = client.post("/processes/service-needs/execution", json={
            "inputs": {"facility_type": kind, "territory": VOLOGDA}, "response": "document"}).get_json()
        stored = scalar(engine, "SELECT sum(deficit) FROM cdt.service_provision WHERE facility_type = :t", t=kind)
        assert stored == pytest.approx(out["summary"]["deficit"], rel=1e-9)
        assert scalar(engine, "SELECT count(*) FROM cdt.service_provision WHERE facility_type = :t", t=kind) == \
            len(out["districts"]["features"])
        assert computed["summary"]["service_provision"][kind]["deficit"] == pytest.approx(out["summary"]["deficit"])


def central_tile(engine) -> str:
    """The z14 tile over the median building of walk_access."""
    lon, lat = engine.connect().execute(text(
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ST_X(ST_PointOnSurface(geom))), "
        "percentile_disc(0.5) WITHIN GROUP (ORDER BY ST_Y(ST_PointOnSurface(geom))) FROM cdt.walk_access")).one()
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 14)
    return f"/collections/walk_access/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}"


def test_result_layers_are_collections_with_tiles(app, engine, computed):
    client = app.test_client()
    page = client.get("/collections/walk_access/items?limit=5&sortby=-residents").get_json()
    assert page["numberMatched"] == scalar(engine, "SELECT count(*) FROM cdt.walk_access")
    assert page["features"][0]["geometry"]["type"] == "MultiPolygon"
    assert "score_15min" in page["features"][0]["properties"]
    deficits = client.get("/collections/service_provision/items?facility_type=school&limit=1000").get_json()
    assert len(deficits["features"]) == scalar(engine, "SELECT count(*) FROM cdt.service_provision "
                                                       "WHERE facility_type = 'school'")
    resp = client.get(central_tile(engine))
    assert resp.status_code == 200
    tile = mapbox_vector_tile.decode(resp.data)
    assert len(tile["walk_access"]["features"]) > 10
    assert {"score_15min", "school_min"} <= set(tile["walk_access"]["features"][0]["properties"])
    layers = {layer["id"]: layer for layer in client.get("/map/config").get_json()["layers"]}
    assert layers["walk_access"]["style"]["by"]["property"] == "score_15min"
    assert not layers["walk_access"]["editable"]


def test_recomputing_replaces_rows_and_refreshes_tiles(app, engine, tokens, computed):
    client = app.test_client()
    before = scalar(engine, "SELECT count(*) FROM cdt.walk_access")
    assert client.get(central_tile(engine)).status_code == 200
    cached = scalar(engine, "SELECT count(*) FROM cdt.tile_cache WHERE tileset = 'walk_access'")
    assert cached >= 1
    stamp = scalar(engine, "SELECT max(created_at) FROM cdt.walk_access")
    run_job(client, tokens["t_analyst_vologda"], {"territory": VOLOGDA})
    assert scalar(engine, "SELECT count(*) FROM cdt.walk_access") == before, "replaced, not duplicated"
    assert scalar(engine, "SELECT min(created_at) FROM cdt.walk_access") > stamp
    assert scalar(engine, "SELECT count(*) FROM cdt.tile_cache WHERE tileset = 'walk_access'") == 0, \
        "the tiles the old rows were drawn into are gone"


def test_who_may_recompute(app, tokens):
    client = app.test_client()
    body = {"inputs": {"territory": VOLOGDA}}
    assert client.post("/processes/analysis-layers/execution", json=body).status_code == 401
    assert client.post("/processes/analysis-layers/execution", json=body,
                       headers=bearer(tokens["t_enterprise"])).status_code == 403
    bad = client.post("/processes/analysis-layers/execution", json={"inputs": {"territory": "1970"}},
                      headers=bearer(tokens["t_federal"]))
    assert bad.status_code == 400 and "does not match" in bad.get_json()["description"]
