"""Security headers on every response; CORS open for reading public resources only."""

import pytest

from geoserver_app.app import create_app
from geoserver_app.config import Config
from tests.conftest import bearer


@pytest.fixture(scope="module")
def client(db_url):
    return create_app(Config.from_env(), database_url=db_url).test_client()


@pytest.mark.parametrize("path", ["/", "/collections", "/collections/buildings/items?limit=1", "/api", "/nowhere"])
def test_security_headers_everywhere(client, path):
    headers = client.get(path).headers
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"


def test_html_pages_carry_a_content_security_policy(client):
    resp = client.get("/collections?f=html")
    assert resp.mimetype == "text/html" and "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "Content-Security-Policy" not in client.get("/collections?f=json").headers


@pytest.mark.parametrize("path", ["/collections/buildings/items?limit=1", "/collections",
                                  "/collections/street_edges/tiles/WebMercatorQuad/14/4735/9963"])
def test_cors_open_for_reading_public_resources(client, path):
    assert client.get(path).headers.get("Access-Control-Allow-Origin") == "*"


def test_preflight_for_public_reads_names_the_allowed_methods(client):
    resp = client.options("/collections/buildings/items", headers={"Origin": "https://qgis.example",
                                                                   "Access-Control-Request-Method": "GET"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize("method,path", [("GET", "/collections/utility_lines/items"), ("GET", "/auth/me"),
                                         ("POST", "/collections/functional_zones/items"), ("GET", "/audit"),
                                         ("DELETE", "/collections/functional_zones/items/1")])
def test_cors_closed_for_writes_and_non_public(client, tokens, method, path):
    resp = client.open(path, method=method, headers={**bearer(tokens["t_federal"]), "Origin": "https://x.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Authorization" in resp.headers.get("Vary", "")


def test_exports_of_non_public_collections_get_no_open_cors():
    from geoserver_app.hardening import public_read

    assert public_read("/exports/collections/facilities", "GET")
    assert not public_read("/exports/collections/utility_lines", "GET")
    assert not public_read("/collections/utility_lines/items", "GET")
