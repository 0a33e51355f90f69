"""The Flask app: health, landing page (HTML and JSON), JSON errors."""

import pytest

from geoserver_app.app import create_app
from geoserver_app.config import Config


@pytest.fixture(scope="module")
def client(db_url):
    app = create_app(Config.from_env(), database_url=db_url)
    return app.test_client()


def test_health_reports_database_and_migrations(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "pass" and body["database"] == "ok" and body["migrations_current"] is True


def test_health_fails_on_unmigrated_database(make_database):
    app = create_app(Config.from_env(), database_url=make_database(migrated=False))
    resp = app.test_client().get("/health")
    assert resp.status_code == 503
    assert resp.get_json()["migrations_current"] is False


def test_health_fails_when_database_unreachable():
    app = create_app(Config.from_env(), database_url="postgresql+psycopg://nobody:x@127.0.0.1:1/none")
    resp = app.test_client().get("/health")
    assert resp.status_code == 503
    assert resp.get_json()["database"] == "unreachable"


def test_landing_html_names_territories_and_layers(client):
    resp = client.get("/?f=html")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    for text in ("г Вологда", "г Екатеринбург", "г Новочебоксарск", "buildings", "25,324", "street_edges"):
        assert text in page


def test_landing_json(client):
    for resp in (client.get("/?f=json"), client.get("/", headers={"Accept": "application/json"})):
        body = resp.get_json()
        layers = {layer["name"]: layer for layer in body["layers"]}
        assert layers["buildings"]["features"] == 25324
        assert layers["facilities"]["features"] == 162
        assert {t["oktmo"] for t in body["territories"]} >= {"19701000", "65701000", "97710000"}


def test_errors_are_json(client):
    resp = client.get("/no/such/page")
    assert resp.status_code == 404
    assert resp.get_json()["code"] == "NotFound"
    resp = client.post("/health")
    assert resp.status_code == 405 and resp.get_json()["code"] == "MethodNotAllowed"
