"""The audit log over HTTP: refusals and writes are recorded; federal reads all, others only their own."""

import pytest

from geoserver_app.app import create_app
from geoserver_app.config import Config
from tests.conftest import bearer


@pytest.fixture(scope="module")
def client(db_url):
    return create_app(Config.from_env(), database_url=db_url).test_client()


def test_refused_write_is_audited_and_readable_by_federal(client, tokens):
    refused = client.delete("/collections/functional_zones/items/999999", headers=bearer(tokens["t_analyst_vologda"]))
    assert refused.status_code == 403
    entries = client.get("/audit?outcome=denied&actor=user:t_analyst_vologda",
                         headers=bearer(tokens["t_federal"])).get_json()["entries"]
    assert entries and entries[0]["action"] == "DELETE /collections/functional_zones/items/999999"
    assert entries[0]["remote_addr"] == "127.0.0.1" and entries[0]["detail"]["status"] == 403


def test_others_read_only_their_own_entries(client, tokens):
    client.delete("/collections/functional_zones/items/999998", headers=bearer(tokens["t_analyst_vologda"]))
    mine = client.get("/audit", headers=bearer(tokens["t_city_ekb"])).get_json()["entries"]
    assert all(e["actor"] == "user:t_city_ekb" for e in mine)
    theirs = client.get("/audit?actor=user:t_analyst_vologda", headers=bearer(tokens["t_city_ekb"]))
    assert theirs.status_code == 200 and theirs.get_json()["entries"] == []


def test_anonymous_cannot_read_the_audit_log(client):
    resp = client.get("/audit")
    assert resp.status_code == 401 and resp.get_json()["code"] == "Unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("query", ["limit=0", "limit=5000", "limit=x", "since=yesterday", "bogus=1"])
def test_bad_audit_queries_are_400(client, tokens, query):
    resp = client.get(f"/audit?{query}", headers=bearer(tokens["t_federal"]))
    assert resp.status_code == 400 and resp.get_json()["code"] == "InvalidParameterValue"
