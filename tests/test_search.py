"""The search box (`GET /search`, `layers.search`) against the real PostGIS demo database.

Expected values come from PostGIS in each test. The demo buildings carry no addresses (the Vologda file has
none), so the tests that need one give a real building the address of the facility inside it, in a
transaction that is rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers import access, search
from layers.access import ANONYMOUS, ReadRule
from layers.errors import InvalidParameterValue

VOLOGDA = "19701000"


@pytest.fixture(scope="module")
def app(db_url):
    return create_app(Config(), database_url=db_url)


@pytest.fixture(scope="module")
def client(app):
    """Anonymous, as a citizen using the map."""
    return app.test_client()


@pytest.fixture
def conn(engine) -> Iterator[Connection]:
    """A transaction rolled back at the end: what a test writes is never seen by another."""
    with engine.connect() as connection, connection.begin() as tx:
        yield connection
        tx.rollback()


def row(engine, sql: str, **params):
    with engine.connect() as c:
        return c.execute(text(sql), params).one()


def found(client, **params) -> list[dict]:
    resp = client.get("/search", query_string=params)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["query"] == params["q"]
    return body["results"]


def ids(results: list[dict], kind: str) -> list[int]:
    return [r["id"] for r in results if r["kind"] == kind]


def give_address(conn: Connection, building_id: int, address: str) -> None:
    conn.execute(text("UPDATE cdt.buildings SET address = :a WHERE id = :id"), {"a": address, "id": building_id})


# --- what is found ------------------------------------------------------------------------------------------
def test_building_found_by_part_of_its_address(conn):
    building_id, address = conn.execute(text(
        "SELECT building_id, address FROM cdt.facilities WHERE building_id IS NOT NULL AND address LIKE '%, %' "
        "ORDER BY id LIMIT 1")).one()
    give_address(conn, building_id, address)
    street = address.split(",")[0]
    for q in (address, street[1:].upper(), f"{street[:4]} {address.split(', ')[1]}"):  # part, other case, words
        results = search.search(conn, ANONYMOUS, q, 50)
        assert building_id in ids(results, "building"), q
    hit = next(r for r in search.search(conn, ANONYMOUS, address) if r["kind"] == "building")
    assert hit == {**hit, "collection": "buildings", "id": building_id, "label": address}


def test_school_found_by_part_of_its_name(client, engine):
    fid, name, type_name = row(engine, "SELECT f.id, f.name, ft.name_ru FROM cdt.facilities f JOIN "
                                       "cdt.facility_types ft ON ft.code = f.type_code WHERE f.type_code = 'school' "
                                       "AND f.name LIKE '%№%' ORDER BY f.id LIMIT 1")
    part = name[name.index("№") - 6:].upper()  # the end of "...школа №5", in other case
    results = found(client, q=part, limit=50)
    hit = next(r for r in results if r["kind"] == "facility" and r["id"] == fid)
    assert hit["collection"] == "facilities"
    assert name in hit["label"] and f"({type_name})" in hit["label"]


def test_facility_found_by_address(client, engine):
    fid, address = row(engine, "SELECT id, address FROM cdt.facilities WHERE address IS NOT NULL ORDER BY id LIMIT 1")
    assert fid in ids(found(client, q=address, limit=50), "facility")


def test_exact_match_comes_first(client, engine):
    fid, name = row(engine, "SELECT id, name FROM cdt.facilities WHERE length(name) > 12 AND name IN ("
                            "SELECT name FROM cdt.facilities GROUP BY name HAVING count(*) = 1) "
                            "ORDER BY id DESC LIMIT 1")
    assert found(client, q=name.lower())[0]["id"] == fid


def test_parcels_found_by_cadastral_number_prefix(client, engine):
    number = row(engine, "SELECT cadastral_number FROM cdt.parcels ORDER BY id LIMIT 1")[0]
    block = number.rsplit(":", 1)[0] + ":"
    in_block = row(engine, "SELECT count(*) FROM cdt.parcels WHERE cadastral_number LIKE :p", p=block + "%")[0]
    for prefix in (block, block[:-1], number[:5]):
        results = found(client, q=prefix, limit=50)
        assert results and all(r["kind"] == "parcel" and r["label"].startswith(prefix) for r in results), prefix
    assert len(found(client, q=block, limit=50)) == min(50, in_block)
    first = found(client, q=number)[0]
    assert (first["collection"], first["label"]) == ("parcels", number)


def test_territory_found_by_name_and_by_oktmo(client, engine):
    tid, name = row(engine, "SELECT id, name FROM cdt.territories WHERE oktmo = :o", o=VOLOGDA)
    assert name == "г Вологда"
    by_name = found(client, q="вологда")
    assert by_name[0]["kind"] == "territory" and by_name[0]["id"] == tid and by_name[0]["label"] == name
    by_code = found(client, q=VOLOGDA)
    assert [(r["collection"], r["id"]) for r in by_code] == [("territories", tid)]


def test_bbox_and_center_lie_on_the_feature(client, engine):
    facility = row(engine, "SELECT name FROM cdt.facilities WHERE type_code = 'school' ORDER BY id LIMIT 1")[0]
    parcel = row(engine, "SELECT cadastral_number FROM cdt.parcels WHERE geom IS NOT NULL ORDER BY id LIMIT 1")[0]
    results = found(client, q=facility) + found(client, q="Вологда") + found(client, q=parcel)
    assert {r["kind"] for r in results} >= {"facility", "territory", "parcel"}
    tables = {"facilities": "geom", "territories": "boundary", "parcels": "geom"}
    for r in results:
        column = tables[r["collection"]]
        extent = row(engine, f"SELECT ST_XMin({column}), ST_YMin({column}), ST_XMax({column}), ST_YMax({column}) "
                             f"FROM cdt.{r['collection']} WHERE id = :id", id=r["id"])
        assert r["bbox"] == pytest.approx(list(extent), abs=1e-6), r
        minx, miny, maxx, maxy = r["bbox"]
        lon, lat = r["center"]
        assert minx <= lon <= maxx and miny <= lat <= maxy, r


def test_no_geometry_gives_null_bbox_and_center(client, engine):
    missing = row(engine, "SELECT count(*) FROM cdt.territories WHERE boundary IS NULL AND centre IS NULL")[0]
    assert missing, "the demo has territories without a boundary (the oblasts)"
    results = [r for r in found(client, q="обл", limit=50) if r["kind"] == "territory"]
    assert any(r["bbox"] is None and r["center"] is None for r in results)


def test_wildcards_are_literal(client, engine):
    assert found(client, q="школа")
    for q in ("%%", "__", "%_", "\\%", "шк%ла", "шк_ла", "шк__ла", "%школа"):
        assert found(client, q=q) == [], q


def test_interleaves_kinds(conn):
    """Many buildings on a street do not push out the school on it."""
    street = conn.execute(text("SELECT split_part(address, ',', 1) FROM cdt.facilities "
                               "WHERE type_code = 'school' AND address LIKE '%, %' ORDER BY id LIMIT 1")).scalar()
    buildings = conn.execute(text("SELECT id FROM cdt.buildings ORDER BY id LIMIT 20")).scalars().all()
    for n, building_id in enumerate(buildings, 1):
        give_address(conn, building_id, f"{street}, {n}")
    results = search.search(conn, ANONYMOUS, street, 5)
    assert len(results) == 5 and ids(results, "facility") and ids(results, "building")


def test_territory_filter(client, engine):
    vologda = found(client, q="школа", territory=VOLOGDA, limit=50)
    assert vologda and all(r["kind"] == "facility" for r in vologda)
    in_vologda = row(engine, "SELECT array_agg(f.id) FROM cdt.facilities f JOIN cdt.territories t "
                             "ON t.id = f.territory_id WHERE t.oktmo = :o", o=VOLOGDA)[0]
    assert set(ids(vologda, "facility")) <= set(in_vologda)
    assert found(client, q="школа", territory="65701000") == []  # Ekaterinburg: parcels only
    # the oblast covers the city
    assert found(client, q="школа", territory="19000000", limit=50) == vologda


# --- limits and bad input -----------------------------------------------------------------------------------
def test_limit_is_honoured(client, engine):
    matching = row(engine, "SELECT count(*) FROM cdt.facilities WHERE name ILIKE '%школа%' "
                           "OR address ILIKE '%школа%'")[0]
    assert matching > 10
    assert len(found(client, q="школа")) == 10
    assert len(found(client, q="школа", limit=3)) == 3
    assert len(found(client, q="школа", limit=50)) == min(50, matching)


@pytest.mark.parametrize("params", [
    {},  # no q
    {"q": "x"}, {"q": "  x  "}, {"q": " "}, {"q": "я" * 201},
    {"q": "школа", "limit": "0"}, {"q": "школа", "limit": "51"}, {"q": "школа", "limit": "ten"},
    {"q": "школа", "limit": "²"}, {"q": "школа", "limit": "-1"},
    {"q": "школа", "territory": "1970"}, {"q": "школа", "territory": "99999999"},
    {"q": "школа", "bbox": "0,0,1,1"},  # not a parameter of /search
])
def test_bad_input_is_400(client, params):
    resp = client.get("/search", query_string=params)
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert body["code"] == "InvalidParameterValue" and body["description"]


def test_the_service_refuses_bad_values(conn):
    with pytest.raises(InvalidParameterValue, match="at least 2"):
        search.search(conn, ANONYMOUS, " a ")
    with pytest.raises(InvalidParameterValue, match="at most 200"):
        search.search(conn, ANONYMOUS, "a" * 201)
    with pytest.raises(InvalidParameterValue, match="limit"):
        search.search(conn, ANONYMOUS, "школа", limit=51)
    assert len(search.search(conn, ANONYMOUS, "  " + "я" * 200 + "  ")) == 0  # stripped first: 200 is allowed


def test_listed_in_openapi(client):
    op = client.get("/api").get_json()["paths"]["/search"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"q", "limit", "territory"}


# --- access -------------------------------------------------------------------------------------------------
def test_a_layer_the_principal_cannot_list_is_not_searched(conn, monkeypatch):
    assert ids(search.search(conn, ANONYMOUS, "школа"), "facility")
    monkeypatch.setattr(access, "can_list", lambda who, layer: layer.name != "facilities")
    assert search.search(conn, ANONYMOUS, "школа") == []


def test_the_read_rule_is_applied(conn, monkeypatch):
    allowed = conn.execute(text("SELECT max(id) FROM cdt.facilities WHERE name ILIKE '%школа%'")).scalar()
    real = access.read_rule

    def only_one(who, layer):
        if layer.name == "facilities":
            return ReadRule("t.id = :acc_only", {"acc_only": allowed})
        return real(who, layer)

    monkeypatch.setattr(access, "read_rule", only_one)
    assert [(r["kind"], r["id"]) for r in search.search(conn, ANONYMOUS, "школа", 50)] == [("facility", allowed)]
