"""OGC API Features Parts 1-4 over HTTP: the Flask test client against the real PostGIS demo database.

Every expected value is computed from PostGIS in the test itself (never a hard-coded count), and every
bad request must be a 4xx with an OGC exception body that leaves the database exactly as it was.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import PROJECT_ROOT, Config
from layers import registry
from tests.conftest import bearer, scalar, table_fingerprints

EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
MSK = "urn:ogc:def:crs:CDT::MSK-35-2"
GEOJSON = "application/geo+json"
B = "/collections/buildings/items"
FZ = "/collections/functional_zones/items"
CQL_JSON = "application/query-cql-json"
MERGE = "application/merge-patch+json"


def msk_proj() -> str:
    """The PROJ definition of МСК-35 zone 2, read from the project's table (not through CDT's code)."""
    with open(PROJECT_ROOT / "data/cadastre/msk_proj4.csv", encoding="utf-8") as fh:
        return next(r["proj4"] for r in csv.DictReader(fh) if r["title"].startswith("МСК-35 зона 2 "))


# --- fixtures and helpers -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(db_url):
    return create_app(Config(), database_url=db_url)


@pytest.fixture(scope="module")
def client(app):
    """Anonymous: reads public collections, may not edit."""
    return app.test_client()


@pytest.fixture(scope="module")
def editor(app, tokens):
    """Signed in as t_federal (Bearer token on every request): may read and edit everything."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = bearer(tokens["t_federal"])["Authorization"]
    return c


def fingerprints(engine) -> dict[str, str]:
    """conftest.table_fingerprints, except a token's last_used_at: any use of a token marks it (at most once a
    minute), so a refused edit by a signed-in user would look like a write."""
    found = table_fingerprints(engine)
    found["api_tokens"] = scalar(engine, "SELECT count(*) || ':' || coalesce(md5(string_agg((to_jsonb(x) - "
                                         "'last_used_at')::text, '|' ORDER BY x.id)), '') FROM cdt.api_tokens x")
    return found


@pytest.fixture
def unchanged(engine):
    """No CDT table changed by the test (conftest's fixture, but see `fingerprints`)."""
    before = fingerprints(engine)
    yield
    after = fingerprints(engine)
    assert [t for t in before if before[t] != after.get(t)] == [], "a refused request wrote something"


def client_with(db_url, **config):
    return create_app(Config(**config), database_url=db_url).test_client()


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def ids_where(engine, table: str, where: str = "true", **params) -> set[int]:
    return {r[0] for r in rows(engine, f"SELECT id FROM cdt.{table} t WHERE {where}", **params)}


def ok(resp, mimetype: str = GEOJSON) -> dict:
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == mimetype
    return resp.get_json()


def ids(body: dict) -> list[int]:
    return [f["id"] for f in body["features"]]


def all_ids(client, path: str, **query) -> list[int]:
    """Every feature of a query in one page (the demo's result sets fit in the maximum page)."""
    body = ok(client.get(path, query_string={**query, "limit": 10000}))
    assert body["numberReturned"] == len(body["features"]) < 10000
    return ids(body)


def follow(client, first_url: str, **kwargs) -> tuple[list[int], list[dict]]:
    """Follow `next` links from a first request to the end; return all ids and each page's body."""
    resp = client.get(first_url, **kwargs) if "data" not in kwargs else client.post(first_url, **kwargs)
    pages = [ok(resp)]
    while True:
        nxt = [lk["href"] for lk in pages[-1]["links"] if lk["rel"] == "next"]
        if not nxt:
            break
        assert len(nxt) == 1 and len(pages) < 200
        pages.append(ok(client.get(nxt[0])))
    return [i for p in pages for i in ids(p)], pages


def link_query(body: dict, rel: str) -> dict[str, str] | None:
    hrefs = [lk["href"] for lk in body["links"] if lk["rel"] == rel]
    return {k: v[0] for k, v in parse_qs(urlsplit(hrefs[0]).query).items()} if hrefs else None


def assert_ogc_error(resp, status: int | tuple[int, ...]) -> dict:
    allowed = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in allowed, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert 400 <= resp.status_code < 500
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert isinstance(body.get("code"), str) and body["code"]
    assert isinstance(body.get("description"), str) and body["description"]
    return body


def first_building(engine) -> int:
    return scalar(engine, "SELECT min(id) FROM cdt.buildings")


# --- Part 1: core ---------------------------------------------------------------------------------------
def test_landing_links_resolve(client):
    body = ok(client.get("/?f=json"), "application/json")
    by_rel = {lk["rel"]: lk for lk in body["links"]}
    expected = {"service-desc": ("application/vnd.oai.openapi+json", "openapi"),
                "conformance": ("application/json", "conformsTo"), "data": ("application/json", "collections")}
    for rel, (mimetype, key) in expected.items():
        assert rel in by_rel, rel
        target = ok(client.get(by_rel[rel]["href"]), mimetype)
        assert key in target
        assert by_rel[rel]["type"].split(";")[0] == mimetype


def test_conformance_classes(client):
    classes = set(ok(client.get("/conformance"), "application/json")["conformsTo"])
    base = "http://www.opengis.net/spec/"
    for c in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
              "ogcapi-features-1/1.0/conf/html", "ogcapi-features-1/1.0/conf/oas30", "ogcapi-features-2/1.0/conf/crs",
              "ogcapi-features-3/1.0/conf/filter", "ogcapi-features-3/1.0/conf/features-filter",
              "cql2/1.0/conf/cql2-text", "cql2/1.0/conf/basic-cql2",
              "ogcapi-features-4/1.0/conf/create-replace-delete"):
        assert base + c in classes, c


def test_openapi_describes_every_route(app, client):
    doc = ok(client.get("/api"), "application/vnd.oai.openapi+json")
    assert doc["openapi"].startswith("3.0")
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    assert set(routes) - set(doc["paths"]) == set(), "routes missing from /api"
    for path, methods in routes.items():
        assert methods <= set(doc["paths"][path]), (path, methods)
    # ... and everything it describes is served (paths may also name one collection, /collections/buildings/items)
    adapter = app.url_map.bind("localhost")
    for path, operations in doc["paths"].items():
        for method in operations:
            endpoint, _ = adapter.match(re.sub(r"{\w+}", "1", path), method=method.upper())  # "1": int ids too
            assert endpoint != "static", path
    get_items = doc["paths"]["/collections/{collectionId}/items"]["get"]
    params = {p["name"]: p for p in get_items["parameters"]}
    assert "cql-text" in params["filter-lang"]["schema"]["enum"]
    assert {"cql2-text", "cql2-json"} <= set(params["filter-lang"]["schema"]["enum"])
    for name in ("bbox", "bbox-crs", "crs", "limit", "datetime", "filter", "filter-crs", "sortby", "properties"):
        assert name in params, name


def test_openapi_limit_follows_config(db_url):
    c = client_with(db_url, items_default_limit=7, items_max_limit=40)
    doc = ok(c.get("/api"), "application/vnd.oai.openapi+json")
    limit = next(p for p in doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 40 and limit["schema"]["default"] == 7
    # ... without changing the document of an app with other settings
    doc = ok(client_with(db_url).get("/api"), "application/vnd.oai.openapi+json")
    limit = next(p for p in doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"]["maximum"] == Config().items_max_limit


def test_collections_list_every_layer(client, editor, engine):
    public = ok(client.get("/collections"), "application/json")
    assert [c["id"] for c in public["collections"]] == [lyr.name for lyr in registry.all_layers()
                                                        if lyr.access == "public"]
    body = ok(editor.get("/collections"), "application/json")
    got = {c["id"]: c for c in body["collections"]}
    assert list(got) == [layer.name for layer in registry.all_layers()]
    for layer in registry.all_layers():
        c = got[layer.name]
        assert c["storageCrs"] and c["extent"]["spatial"]["crs"] == CRS84
        if not layer.geometry_column:
            continue
        assert c["storageCrs"] in c["crs"]
        assert {CRS84, EPSG + "4326", EPSG + "3857", EPSG + "32637", MSK} <= set(c["crs"])
        e = rows(engine, f'SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM '
                         f'(SELECT ST_Extent("{layer.geometry_column}") e FROM {layer.qualified_table}) s')[0]
        expected = [-180, -90, 180, 90] if e[0] is None else list(e)
        assert c["extent"]["spatial"]["bbox"][0] == pytest.approx(expected, abs=1e-6), layer.name


def test_collection_offers_the_msk_of_vologda(client):
    body = ok(client.get("/collections/buildings"), "application/json")
    assert MSK in body["crs"] and EPSG + "32637" in body["crs"]
    assert {lk["rel"] for lk in body["links"]} >= {"self", "items", "http://www.opengis.net/def/rel/ogc/1.0/queryables"}


JSON_TYPES = {"/": "application/json", "/collections": "application/json", "/collections/buildings": "application/json",
              "/conformance": "application/json", "/api": "application/vnd.oai.openapi+json",
              B: GEOJSON, B + "/{fid}": GEOJSON}


@pytest.mark.parametrize("path", list(JSON_TYPES))
def test_json_or_html_by_f_and_accept(client, engine, path):
    url = path.format(fid=first_building(engine))
    json_type = JSON_TYPES[path]
    for resp in (client.get(url, query_string={"f": "html"}), client.get(url, headers={"Accept": "text/html"}),
                 client.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})):
        assert resp.status_code == 200 and resp.mimetype == "text/html"
        assert resp.get_data(as_text=True).lstrip().lower().startswith("<!doctype html>")
    for resp in (client.get(url, query_string={"f": "json"}), client.get(url, headers={"Accept": "application/json"})):
        assert resp.status_code == 200 and resp.mimetype in (json_type, "application/json"), resp.mimetype
        assert isinstance(resp.get_json(), dict)
    assert client.get(url, headers={"Accept": json_type}).mimetype == json_type


def test_items_html_lists_the_page(client):
    page = ok(client.get(B, query_string={"limit": 5, "sortby": "-floors"}))
    html = client.get(B, query_string={"limit": 5, "sortby": "-floors", "f": "html"}).get_data(as_text=True)
    for fid in ids(page):
        assert f"/collections/buildings/items/{fid}?f=html" in html


def test_limit_default_and_maximum(db_url, client):
    assert ok(client.get(B))["numberReturned"] == Config().items_default_limit
    c = client_with(db_url, items_default_limit=7, items_max_limit=40)
    assert ok(c.get(B))["numberReturned"] == 7
    assert ok(c.get(B, query_string={"limit": 40}))["numberReturned"] == 40
    assert_ogc_error(c.get(B, query_string={"limit": 41}), 400)


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_paging_follows_next_to_the_end(db_url, engine, mode):
    c = client_with(db_url, number_matched={"buildings": mode})
    expected = ids_where(engine, "buildings", "floors > 8")
    limit = 100
    assert len(expected) > 2 * limit  # several pages
    got, pages = follow(c, B, query_string={"filter": "floors > 8", "limit": limit})
    assert len(got) == len(set(got)), "a feature appears on two pages"
    assert set(got) == expected
    assert got == sorted(got)  # the default order is the id
    for i, page in enumerate(pages):
        if mode == "off":
            assert "numberMatched" not in page
        else:
            assert page["numberMatched"] == len(expected)
        prev = link_query(page, "prev")
        if i == 0:
            assert prev is None
        else:
            assert int(prev["offset"]) == (i - 1) * limit and prev["filter"] == "floors > 8"
            assert ids(ok(c.get(next(lk["href"] for lk in page["links"] if lk["rel"] == "prev")))) == ids(pages[i - 1])


@pytest.mark.parametrize("mode", ["exact", "estimated", "off", "auto", "no-such-mode"])
def test_number_matched_modes(db_url, engine, mode):
    c = client_with(db_url, number_matched={"buildings": mode})
    body = ok(c.get(B, query_string={"floors": 9, "limit": 1}))
    count = scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE floors = 9")
    if mode == "off":
        assert "numberMatched" not in body
    elif mode == "estimated":
        assert isinstance(body["numberMatched"], int) and not isinstance(body["numberMatched"], bool)
        assert body["numberMatched"] >= 0
    else:  # exact, auto (a city is below the auto threshold), and an unknown mode falls back to auto
        assert body["numberMatched"] == count


def test_datetime_instants_and_intervals(client, engine):
    times = [r[0] for r in rows(engine, "SELECT DISTINCT updated_at FROM cdt.facilities ORDER BY 1")]
    t0, t1 = times[0], times[-1]
    us = timedelta(microseconds=1)

    def expect(where, **p):
        return ids_where(engine, "facilities", where, **p)

    cases = {
        t0.isoformat(): expect("updated_at = :t", t=t0),
        t1.isoformat().replace("+00:00", "Z"): expect("updated_at = :t", t=t1),
        f"{t0.isoformat()}/{t1.isoformat()}": expect("updated_at BETWEEN :a AND :b", a=t0, b=t1),
        f"../{t0.isoformat()}": expect("updated_at <= :t", t=t0),
        f"{t1.isoformat()}/..": expect("updated_at >= :t", t=t1),
        f"{(t1 + us).isoformat()}/..": set(),
        f"../{(t0 - us).isoformat()}": set(),
        f"/{t1.isoformat()}": expect("true"),
        "../..": expect("true"),
        t0.date().isoformat(): expect("(updated_at AT TIME ZONE 'UTC')::date = :d", d=t0.date()),
        (t0.date() - timedelta(days=1)).isoformat(): set(),
    }
    for value, expected in cases.items():
        assert set(all_ids(client, "/collections/facilities/items", datetime=value)) == expected, value
    assert expect("true"), "the demo has facilities"


@pytest.mark.parametrize("table, prop, sql_value", [("buildings", "floors", "9"), ("buildings", "is_living", "true"),
                                                    ("facilities", "type_code", None)])
def test_property_equality(client, engine, table, prop, sql_value):
    if sql_value is None:  # the least common value of a text property
        sql_value = scalar(engine, f'SELECT "{prop}" FROM cdt.{table} WHERE "{prop}" IS NOT NULL '
                                   f'GROUP BY 1 ORDER BY count(*), 1 LIMIT 1')
    expected = ids_where(engine, table, f'"{prop}"::text = :v', v=sql_value)
    assert expected and expected != ids_where(engine, table)
    body = ok(client.get(f"/collections/{table}/items", query_string={prop: sql_value, "limit": 10000}))
    assert set(ids(body)) == expected and body["numberMatched"] == len(expected)


@pytest.mark.parametrize("sortby, order", [("-floors,+id", "floors DESC NULLS LAST, id ASC"),
                                           ("floors,-id", "floors ASC NULLS LAST, id DESC"),
                                           ("-id", "id DESC"), ("year", "year ASC NULLS LAST, id")])
def test_sortby(client, engine, sortby, order):
    expected = [r[0] for r in rows(engine, f"SELECT id FROM cdt.buildings ORDER BY {order} LIMIT 300")]
    body = ok(client.get(B, query_string={"sortby": sortby, "limit": 300}))
    assert ids(body) == expected


def test_properties_selects_only_those(client, engine):
    body = ok(client.get(B, query_string={"properties": "floors,residents", "limit": 50}))
    truth = {r.id: (r.floors, r.residents) for r in rows(engine, "SELECT id, floors, residents FROM cdt.buildings "
                                                                 "ORDER BY id LIMIT 50")}
    assert len(body["features"]) == 50
    for f in body["features"]:
        assert set(f["properties"]) == {"floors", "residents"}
        assert (f["properties"]["floors"], f["properties"]["residents"]) == truth[f["id"]]
        assert f["geometry"]["type"] == "MultiPolygon"
    one = ok(client.get(f"{B}/{body['features'][0]['id']}", query_string={"properties": "floors"}))
    assert set(one["properties"]) == {"floors"}


def test_skip_geometry(client):
    with_geom = ok(client.get(B, query_string={"limit": 20}))
    without = ok(client.get(B, query_string={"limit": 20, "skipGeometry": "true"}))
    assert ids(with_geom) == ids(without)
    assert all(f["geometry"] is None for f in without["features"])
    assert all(f["geometry"] is not None for f in with_geom["features"])
    assert [f["properties"] for f in without["features"]] == [f["properties"] for f in with_geom["features"]]
    assert all(f["geometry"] is not None for f in ok(client.get(B, query_string={"skipGeometry": "false"}))["features"])


# --- Part 2: CRS ----------------------------------------------------------------------------------------
CRS_CASES = [("EPSG:32637", EPSG + "32637", "32637", False), ("EPSG:3857", EPSG + "3857", "3857", False),
             ("EPSG:4326", EPSG + "4326", "4326", True), (MSK, MSK, "msk", False),
             (EPSG + "32637", EPSG + "32637", "32637", False), ("[EPSG:3857]", EPSG + "3857", "3857", False)]


@pytest.mark.parametrize("crs, uri, target, lat_lon", CRS_CASES)
def test_crs_of_the_response(client, engine, crs, uri, target, lat_lon):
    body = client.get(B, query_string={"crs": crs, "limit": 5})
    assert body.headers["Content-Crs"] == f"<{uri}>"
    feats = ok(body)["features"]
    to = "CAST(:proj AS text)" if target == "msk" else target
    params = {"proj": msk_proj()} if target == "msk" else {}
    for f in feats:
        x, y = rows(engine, f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_StartPoint(ST_ExteriorRing(ST_GeometryN("
                            f"ST_Transform(geom, {to}), 1))) p FROM cdt.buildings WHERE id = :id) s", id=f["id"],
                    **params)[0]
        first = f["geometry"]["coordinates"][0][0][0]
        if lat_lon:  # EPSG:4326 is latitude first: Vologda is near 59.2 N, 39.9 E
            assert 58.5 < first[0] < 60 and 39 < first[1] < 41
            assert first == pytest.approx([y, x], abs=1e-7)
        else:
            assert first == pytest.approx([x, y], abs=0.01)
            assert abs(first[0]) > 1000  # metres, not degrees
    one = client.get(f"{B}/{feats[0]['id']}", query_string={"crs": crs})
    assert one.status_code == 200 and one.headers["Content-Crs"] == f"<{uri}>"
    assert one.get_json()["geometry"] == feats[0]["geometry"]


@pytest.mark.parametrize("path", [B, B + "?f=html", B + "/{fid}", B + "/{fid}?f=html", B + "?skipGeometry=true"])
def test_content_crs_on_every_items_response(client, engine, path):
    resp = client.get(path.format(fid=first_building(engine)))
    assert resp.status_code == 200 and resp.headers["Content-Crs"] == f"<{CRS84}>"


def test_bbox_in_other_crs_selects_the_same_features(client, engine):
    x0, y0, x1, y1 = 39.86, 59.20, 39.90, 59.22
    crs84 = ids_where(engine, "buildings", "ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
                      a=x0, b=y0, c=x1, d=y1)
    assert 100 < len(crs84) < 9000
    assert set(all_ids(client, B, bbox=f"{x0},{y0},{x1},{y1}")) == crs84
    assert set(all_ids(client, B, bbox=f"{x0},{y0},{x1},{y1}", **{"bbox-crs": CRS84})) == crs84
    assert set(all_ids(client, B, bbox=f"{y0},{x0},{y1},{x1}", **{"bbox-crs": "EPSG:4326"})) == crs84
    assert set(all_ids(client, B, bbox=f"{x0},{y0},0,{x1},{y1},100")) == crs84
    # The same box as a UTM box: the envelope of the (densified) CRS84 box in EPSG:32637
    u = rows(engine, "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Envelope(ST_Transform("
                     "ST_Segmentize(ST_MakeEnvelope(:a, :b, :c, :d, 4326), 0.0005), 32637)) e) s",
             a=x0, b=y0, c=x1, d=y1)[0]
    utm = ids_where(engine, "buildings", "ST_Intersects(ST_Transform(geom, 32637), ST_MakeEnvelope(:a, :b, :c, :d, "
                                         "32637))", a=u[0], b=u[1], c=u[2], d=u[3])
    got = set(all_ids(client, B, bbox=",".join(str(v) for v in u), **{"bbox-crs": "EPSG:32637"}))
    assert got == utm and crs84 <= got


# --- Part 3: filters ------------------------------------------------------------------------------------
FLOORS9_JSON = json.dumps({"op": "and", "args": [{"op": "=", "args": [{"property": "floors"}, 9]},
                                                 {"op": ">", "args": [{"property": "residents"}, 0]}]})


@pytest.mark.parametrize("lang, expr", [(None, "floors = 9 AND residents > 0"),
                                        ("cql2-text", "floors = 9 AND residents > 0"),
                                        ("cql-text", "floors = 9 AND residents > 0"),
                                        ("cql2-json", FLOORS9_JSON)])
def test_filter_languages(client, engine, lang, expr):
    expected = ids_where(engine, "buildings", "floors = 9 AND residents > 0")
    assert expected
    query = {"filter": expr, **({"filter-lang": lang} if lang else {})}
    assert set(all_ids(client, B, **query)) == expected


def test_filter_cql_json_by_post(client, engine):
    expected = ids_where(engine, "buildings", "floors = 9 AND residents > 0")
    # a query, not an edit: read-only collections take it too; paging links carry the filter on
    got, pages = follow(client, B, data=FLOORS9_JSON, content_type=CQL_JSON, query_string={"limit": 20})
    assert len(pages) > 1 and len(got) == len(set(got))
    assert set(got) == expected and pages[0]["numberMatched"] == len(expected)
    body = ok(client.post(B, data=FLOORS9_JSON, content_type="application/cql2+json", query_string={"limit": 1000}))
    assert set(ids(body)) == expected


@pytest.mark.parametrize("filter_crs, srid, corners", [
    ("EPSG:32637", 32637, (549800, 6563300, 550600, 6564100)),
    ("EPSG:3857", 3857, (4439300, 8225300, 4440700, 8226700)),
    ("EPSG:4326", "lat_lon", (59.205, 39.875, 59.215, 39.895)),
    (None, 4326, (39.875, 59.205, 39.895, 59.215)),
])
def test_filter_crs(client, engine, filter_crs, srid, corners):
    a, b, c, d = corners
    wkt = f"POLYGON(({a} {b}, {c} {b}, {c} {d}, {a} {d}, {a} {b}))"
    geom = ("ST_FlipCoordinates(ST_GeomFromText(:wkt, 4326))" if srid == "lat_lon" else
            f"ST_Transform(ST_GeomFromText(:wkt, {srid}), 4326)")
    expected = ids_where(engine, "buildings", f"ST_Intersects(geom, {geom})", wkt=wkt)
    assert 20 < len(expected) < 9000
    query = {"filter": f"S_INTERSECTS(geometry, {wkt})", **({"filter-crs": filter_crs} if filter_crs else {})}
    assert set(all_ids(client, B, **query)) == expected


def test_queryables_is_json_schema(client, engine):
    resp = client.get("/collections/buildings/queryables")
    body = ok(resp, "application/schema+json")
    assert body["$schema"].startswith("https://json-schema.org/") and body["type"] == "object"
    columns = {r[0] for r in rows(engine, "SELECT column_name FROM information_schema.columns "
                                          "WHERE table_schema = 'cdt' AND table_name = 'buildings'")}
    assert set(body["properties"]) == (columns - {"geom"}) | {"geometry", "id"}
    assert body["properties"]["floors"]["type"] in ("integer", ["integer", "null"])
    assert body["properties"]["geometry"]["format"].startswith("geometry-")
    schema = ok(client.get("/collections/functional_zones/schema"), "application/schema+json")
    assert "zone_type" in schema["properties"]


# --- Part 4: transactions on functional_zones -----------------------------------------------------------
def square(x: float, y: float, size: float = 0.004) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]}


def feature(geometry: dict, **props) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": props}


@pytest.fixture
def created(engine):
    """Feature ids created by a test; removed afterwards, with their history."""
    made: list[int] = []
    yield made
    with engine.begin() as conn:
        for fid in made:
            conn.execute(text("DELETE FROM cdt.functional_zones WHERE id = :id"), {"id": fid})
            conn.execute(text("DELETE FROM cdt.history WHERE collection = 'functional_zones' AND feature_id = :f"),
                         {"f": str(fid)})


def create(client, created: list, body: dict, **headers) -> tuple[int, str]:
    resp = client.post(FZ, data=json.dumps(body), content_type=GEOJSON, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    fid = resp.get_json()["id"]
    created.append(fid)
    assert urlsplit(resp.headers["Location"]).path == f"{FZ}/{fid}"
    assert resp.headers["ETag"]
    return fid, resp.headers["ETag"]


def zone_row(engine, fid: int):
    found = rows(engine, "SELECT * FROM cdt.functional_zones WHERE id = :id", id=fid)
    return found[0] if found else None


def same_geometry(engine, fid: int, geojson: dict, srid_or_proj: int | str = 4326) -> bool:
    src = ("ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(:g), 0), CAST(:p AS text), 'EPSG:4326')"
           if isinstance(srid_or_proj, str) else f"ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(:g), {srid_or_proj}), "
                                                  f"4326)")
    dist = scalar(engine, f"SELECT ST_HausdorffDistance(geom, ST_SetSRID({src}, 4326)) FROM cdt.functional_zones "
                          f"WHERE id = :id", g=json.dumps(geojson), p=srid_or_proj, id=fid)
    return dist is not None and dist < 1e-9


def test_create_read_replace_patch(editor, engine, created):
    g1 = square(39.881, 59.211)
    fid, etag1 = create(editor, created, feature(g1, zone_type="residential", name="Заречье", max_floors=9))
    got = editor.get(f"{FZ}/{fid}")
    assert ok(got)["properties"]["name"] == "Заречье" and got.headers["ETag"] == etag1
    assert same_geometry(engine, fid, g1) and zone_row(engine, fid).version == 1
    assert editor.get(f"{FZ}/{fid}", headers={"If-None-Match": etag1}).status_code == 304

    g2 = square(39.885, 59.213)
    put = editor.put(f"{FZ}/{fid}", data=json.dumps(feature(g2, zone_type="business")), content_type=GEOJSON,
                     headers={"If-Match": etag1})
    body = ok(put)
    etag2 = put.headers["ETag"]
    assert etag2 != etag1 and editor.get(f"{FZ}/{fid}").headers["ETag"] == etag2
    row = zone_row(engine, fid)
    assert (row.zone_type, row.name, row.max_floors, row.status, row.version) == ("business", None, None,
                                                                                  "existing", 2)
    assert same_geometry(engine, fid, g2) and body["properties"]["zone_type"] == "business"

    before = fingerprints(engine)
    stale = editor.patch(f"{FZ}/{fid}", data=json.dumps({"properties": {"name": "x"}}), content_type=MERGE,
                         headers={"If-Match": etag1})
    assert_ogc_error(stale, 412)
    stale = editor.put(f"{FZ}/{fid}", data=json.dumps(feature(g1, zone_type="x")), content_type=GEOJSON,
                       headers={"If-Match": etag1})
    assert_ogc_error(stale, 412)
    assert_ogc_error(editor.delete(f"{FZ}/{fid}", headers={"If-Match": etag1}), 412)
    assert fingerprints(engine) == before, "a refused edit wrote something"

    patched = editor.patch(f"{FZ}/{fid}", data=json.dumps({"properties": {"name": "Центр", "max_floors": 12}}),
                           content_type=MERGE, headers={"If-Match": etag2})
    assert ok(patched)["properties"]["name"] == "Центр"
    removed = editor.patch(f"{FZ}/{fid}", data=json.dumps({"properties": {"name": None}}), content_type=MERGE,
                           headers={"If-Match": patched.headers["ETag"]})
    assert removed.status_code == 200 and removed.get_json()["properties"]["name"] is None
    row = zone_row(engine, fid)
    assert (row.name, row.max_floors, row.zone_type, row.version) == (None, 12, "business", 4)
    assert same_geometry(engine, fid, g2)  # a patch without geometry keeps it


@pytest.mark.parametrize("crs, target", [(EPSG + "32637", 32637), (EPSG + "3857", 3857), (MSK, "msk"),
                                         (EPSG + "4326", "lat_lon")])
def test_content_crs_of_the_body(editor, engine, created, crs, target):
    lon, lat = 39.89, 59.215
    if target == "lat_lon":
        geometry = square(lat, lon)
        geometry["coordinates"] = [[[y, x] for x, y in square(lon, lat)["coordinates"][0]]]
    else:
        to = "CAST(:p AS text)" if target == "msk" else str(target)
        x, y = rows(engine, f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(:x, :y), "
                            f"4326), {to}) p) s", x=lon, y=lat, p=msk_proj())[0]
        geometry = square(x, y, 300.0)
    fid, _ = create(editor, created, feature(geometry, zone_type="green"), **{"Content-Crs": f"<{crs}>"})
    if target == "lat_lon":
        assert same_geometry(engine, fid, square(lon, lat))
    else:
        assert same_geometry(engine, fid, geometry, msk_proj() if target == "msk" else target)
    # the response in the same CRS gives the coordinates back
    back = ok(editor.get(f"{FZ}/{fid}", query_string={"crs": crs}))
    assert back["geometry"]["coordinates"][0][0][0] == pytest.approx(geometry["coordinates"][0][0], abs=0.01)


def test_delete_history_and_revert(editor, engine, created):
    g1, g2 = square(39.87, 59.22), square(39.872, 59.222, 0.002)
    fid, etag1 = create(editor, created, feature(g1, zone_type="residential", name="v1", max_floors=5))
    put = editor.put(f"{FZ}/{fid}", data=json.dumps(feature(g2, zone_type="industrial", name="v2",
                                                            status="planned")),
                     content_type=GEOJSON, headers={"If-Match": etag1})
    assert put.status_code == 200
    reverted = editor.post(f"{FZ}/{fid}/history/1/revert", headers={"If-Match": put.headers["ETag"]})
    assert ok(reverted)["properties"]["name"] == "v1"
    row = zone_row(engine, fid)
    assert (row.zone_type, row.name, row.max_floors, row.status, row.version) == ("residential", "v1", 5,
                                                                                  "existing", 3)
    assert same_geometry(engine, fid, g1)

    old_etag = editor.get(f"{FZ}/{fid}").headers["ETag"]
    assert editor.delete(f"{FZ}/{fid}", headers={"If-Match": old_etag}).status_code == 204
    assert zone_row(engine, fid) is None
    assert_ogc_error(editor.get(f"{FZ}/{fid}"), 404)
    assert_ogc_error(editor.delete(f"{FZ}/{fid}"), 404)

    back = editor.post(f"{FZ}/{fid}/history/2/revert")
    assert ok(back)["properties"]["name"] == "v2"
    assert back.headers["ETag"] != old_etag and editor.get(f"{FZ}/{fid}").headers["ETag"] == back.headers["ETag"]
    row = zone_row(engine, fid)
    assert (row.zone_type, row.name, row.status) == ("industrial", "v2", "planned") and same_geometry(engine, fid, g2)
    # an ETag of the feature's earlier life does not match the feature brought back
    assert_ogc_error(editor.patch(f"{FZ}/{fid}", data='{"properties": {"name": "z"}}', content_type=MERGE,
                                  headers={"If-Match": old_etag}), 412)

    history = ok(editor.get(f"{FZ}/{fid}/history"), "application/json")["versions"]
    truth = rows(engine, "SELECT version, lower(operation), actor FROM cdt.history WHERE collection = "
                         "'functional_zones' AND feature_id = :f ORDER BY id", f=str(fid))
    assert [h["operation"] for h in history] == ["insert", "update", "update", "delete", "insert"]
    assert [(h["version"], h["operation"], h["actor"]) for h in history] == [tuple(r) for r in truth]
    assert all(h["actor"] == "user:t_federal" for h in history)
    assert history[0]["after"]["name"] == "v1" and history[1]["before"]["name"] == "v1"


def test_history_of_extreme_numbers(editor, created):
    fid, _ = create(editor, created, feature(square(39.86, 59.19), zone_type="green", density_people_ha=1e20))
    versions = ok(editor.get(f"{FZ}/{fid}/history"), "application/json")["versions"]
    assert versions[0]["after"]["density_people_ha"] == 1e20


def test_options_allow(editor, engine, created):
    fid, _ = create(editor, created, feature(square(39.86, 59.2), zone_type="green"))
    resp = editor.options(f"{FZ}/{fid}")
    assert resp.status_code in (200, 204)
    assert {"GET", "PUT", "PATCH", "DELETE"} <= {m.strip() for m in resp.headers["Allow"].split(",")}
    resp = editor.options(f"{B}/{first_building(engine)}")
    allow = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert "GET" in allow and not allow & {"PUT", "PATCH", "DELETE", "POST"}


# --- bad input: a 4xx with an OGC exception, and nothing written ----------------------------------------
BOWTIE = {"type": "Polygon", "coordinates": [[[39.9, 59.2], [39.91, 59.21], [39.91, 59.2], [39.9, 59.21],
                                              [39.9, 59.2]]]}
GOOD = feature(square(39.88, 59.2), zone_type="residential")

BAD_GETS = [
    # bbox
    (B, {"bbox": "39,59,40"}, 400), (B, {"bbox": "a,b,c,d"}, 400), (B, {"bbox": "40,59,39,60"}, 400),
    (B, {"bbox": "39,59,40,95"}, 400), (B, {"bbox": "NaN,59,40,60"}, 400), (B, {"bbox": "39,59,inf,60"}, 400),
    (B, {"bbox": "39,59,40,60,1"}, 400), (B, {"bbox": ""}, 400),
    (B, {"bbox": "95,39,96,40", "bbox-crs": "EPSG:4326"}, 400),
    (B, {"bbox": "39,59,40,60", "bbox-crs": "EPSG:9999"}, 400),
    (B, {"bbox": "0,0,0,0", "bbox-crs": "EPSG:32637"}, (200, 400)),
    (B, {"bbox": "-1e30,-1e30,1e30,1e30", "bbox-crs": "EPSG:32637"}, 400),
    (B, {"bbox": "-1e30,-1e30,1e30,1e30", "bbox-crs": MSK}, 400),
    (B, {"bbox": "500000,6000000,500000.01,6600000", "bbox-crs": "EPSG:32637"}, (200, 400)),
    ("/collections/planning_norms/items", {"bbox": "39,59,40,60"}, 400),
    # collection and feature ids
    ("/collections/nope/items", {}, 404), ("/collections/nope", {}, 404), ("/collections/nope/queryables", {}, 404),
    ("/collections/" + quote("buildings;DROP TABLE cdt.buildings", safe="") + "/items", {}, 404),
    ("/collections/" + quote("buildings' OR ''='", safe="") + "/items", {}, 404),
    (B + "/999999999", {}, 404), (B + "/abc", {}, 404), (B + "/-1", {}, 404), (B + "/1.5", {}, 404),
    (B + "/99999999999999999999", {}, 404), (B + "/" + quote("1 OR 1=1", safe=""), {}, 404),
    (B + "/" + quote("1;DROP TABLE cdt.buildings", safe=""), {}, 404),
    (B + "/" + quote("1) OR (1=1", safe=""), {}, 404),
    (FZ + "/999999999/history", {}, 404), (B + "/abc/history", {}, 404),
    # unknown parameters, unknown properties, injection
    (B, {"foo": "1"}, 400), (B, {"ids": "1,2"}, 400), (B, {"limit": ["1", "2"]}, 400),
    (B + "/{fid}", {"foo": "1"}, 400), ("/collections", {"foo": "1"}, 400), ("/conformance", {"foo": "1"}, 400),
    ("/collections/buildings", {"foo": "1"}, 400), ("/collections/buildings/queryables", {"foo": "1"}, 400),
    (B, {"sortby": "nope"}, 400), (B, {"sortby": "floors;DROP TABLE cdt.buildings"}, 400),
    (B, {"sortby": '"floors\\"; DROP'}, 400), (B, {"sortby": "floors) OR (1=1"}, 400), (B, {"sortby": ""}, 400),
    (B, {"sortby": "+"}, 400), (B, {"sortby": "-"}, 400), (B, {"sortby": "floors,"}, 400),
    (B, {"properties": "nope"}, 400), (B, {"properties": "floors;DROP TABLE cdt.buildings"}, 400),
    (B, {"properties": '"floors\\"; DROP'}, 400), (B, {"properties": "floors,,residents"}, 400),
    (B + "/{fid}", {"properties": "' OR ''='"}, 400),
    (B, {"nope": "1"}, 400), (B, {"floors": "abc"}, 400), (B, {"floors": "9;DROP TABLE cdt.buildings"}, 400),
    (B, {"floors": "1) OR (1=1"}, 400), (B, {"is_living": "maybe"}, 400), (B, {"updated_at": "yesterday"}, 400),
    (B, {"address": "' OR ''='\x00"}, 400),
    # filters
    (B, {"filter": "floors ="}, 400), (B, {"filter": "floors = 'a'"}, 400), (B, {"filter": "nope = 1"}, 400),
    (B, {"filter": "floors BETWEEN 1 AND"}, 400), (B, {"filter": "S_INTERSECTS(geometry, POINT(1))"}, 400),
    (B, {"filter": "floors > 1 AND"}, 400), (B, {"filter": "(floors = 1"}, 400), (B, {"filter": ""}, 400),
    (B, {"filter": "floors;DROP TABLE cdt.buildings"}, 400), (B, {"filter": '"floors\\"; DROP'}, 400),
    (B, {"filter": "1) OR (1=1"}, 400), (B, {"filter": "' OR ''='"}, 400),
    (B, {"filter": "floors = 1; DELETE FROM cdt.buildings"}, 400), (B, {"filter": "address = '\x00'"}, 400),
    (B, {"filter": "floors = 1", "filter-lang": "sql"}, 400), (B, {"filter-lang": "sql"}, 400),
    (B, {"filter": "{bad", "filter-lang": "cql2-json"}, 400), (B, {"filter": "[1]", "filter-lang": "cql2-json"}, 400),
    (B, {"filter": "floors = 9", "filter-lang": "cql2-json"}, 400),
    (B, {"filter": '{"op": "drop", "args": []}', "filter-lang": "cql2-json"}, 400),
    (B, {"filter": '{"op": "=", "args": [{"property": "floors;DROP TABLE cdt.buildings"}, 1]}',
         "filter-lang": "cql2-json"}, 400),
    (B, {"filter": "S_INTERSECTS(geometry, POINT(39.9 59.2))", "filter-crs": "EPSG:9999"}, 400),
    (B, {"filter": "S_INTERSECTS(geometry, POINT(1e30 1e30))", "filter-crs": MSK}, (200, 400)),
    # crs
    (B, {"crs": "EPSG:9999"}, 400), (B, {"crs": "urn:nope"}, 400), (B + "/{fid}", {"crs": "EPSG:4327"}, 400),
    (B, {"crs": "EPSG:32637;DROP TABLE cdt.buildings"}, 400),
    # paging
    (B, {"limit": "0"}, 400), (B, {"limit": "-1"}, 400), (B, {"limit": "10001"}, 400), (B, {"limit": "abc"}, 400),
    (B, {"limit": "1.5"}, 400), (B, {"offset": "-1"}, 400), (B, {"offset": "abc"}, 400),
    # datetime
    (B, {"datetime": "garbage"}, 400), (B, {"datetime": "2030-01-01T00:00:00Z/2020-01-01T00:00:00Z"}, 400),
    (B, {"datetime": "2020-13-01"}, 400), (B, {"datetime": ".."}, 400), (B, {"datetime": "2020-01-01/x"}, 400),
    (B, {"skipGeometry": "maybe"}, 400),
    # formats
    (B, {"f": "xml"}, 400), (B + "/{fid}", {"f": "xml"}, 400), ("/collections", {"f": "xml"}, 400),
    ("/api", {"f": "xml"}, 400), ("/conformance", {"f": "xml"}, 400), ("/", {"f": "xml"}, 400),
    ("/collections/buildings", {"f": "xml"}, 400),
]


@pytest.mark.parametrize("path, query, status", BAD_GETS, ids=[f"{p} {q}" for p, q, _ in BAD_GETS])
def test_bad_query_is_refused(client, engine, unchanged, path, query, status):
    resp = client.get(path.format(fid=first_building(engine)), query_string=query)
    if isinstance(status, tuple) and resp.status_code == 200:
        return  # an acceptable answer to an odd but valid request (e.g. a degenerate box): no 500, no write
    assert_ogc_error(resp, status)


@pytest.fixture(scope="module")
def zone(editor, engine):
    """A feature of functional_zones edited once, so its first ETag is stale: (id, stale, current)."""
    resp = editor.post(FZ, data=json.dumps(feature(square(39.9, 59.23), zone_type="residential", name="a")),
                       content_type=GEOJSON)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    fid, stale = resp.get_json()["id"], resp.headers["ETag"]
    resp = editor.patch(f"{FZ}/{fid}", data='{"properties": {"name": "b"}}', content_type=MERGE)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    current = resp.headers["ETag"]
    yield fid, stale, current
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM cdt.functional_zones WHERE id = :id"), {"id": fid})
        conn.execute(text("DELETE FROM cdt.history WHERE collection = 'functional_zones' AND feature_id = :f"),
                     {"f": str(fid)})


def _body(value) -> str | bytes:
    return value if isinstance(value, (str, bytes)) else json.dumps(value)


BAD_WRITES = [
    # (method, path, body, content type, headers, status)
    ("POST", FZ, feature(BOWTIE, zone_type="residential"), GEOJSON, {}, 400),
    ("POST", FZ, feature({"type": "Point", "coordinates": [39.9, 59.2]}, zone_type="residential"), GEOJSON, {}, 400),
    ("POST", FZ, feature({"type": "LineString", "coordinates": [[39.9, 59.2], [39.91, 59.2]]}, zone_type="x"),
     GEOJSON, {}, 400),
    ("POST", FZ, feature(square(39.9, 59.2), zone_type="residential", nope=1), GEOJSON, {}, 400),
    ("POST", FZ, feature(square(39.9, 59.2), zone_type="residential", max_floors="nine"), GEOJSON, {}, 400),
    ("POST", FZ, feature(square(39.9, 59.2), zone_type="residential", max_floors=True), GEOJSON, {}, 400),
    ("POST", FZ, feature(square(39.9, 59.2), zone_type=5), GEOJSON, {}, 400),
    ("POST", FZ, feature(square(39.9, 59.2), name="no zone type"), GEOJSON, {}, 400),
    ("POST", FZ, feature(square(39.9, 59.2), zone_type=None), GEOJSON, {}, 400),
    ("POST", FZ, feature(square(39.9, 59.2), zone_type="residential", status="demolished"), GEOJSON, {}, 400),
    ("POST", FZ, feature(square(39.9, 59.2), zone_type="residential", max_floors=2 ** 40), GEOJSON, {}, 400),
    ("POST", FZ, feature(square(39.9, 59.2), zone_type="residential", name="a\x00b"), GEOJSON, {}, 400),
    ("POST", FZ, feature(square(200, 100), zone_type="residential"), GEOJSON, {}, 400),
    ("POST", FZ, feature({"type": "Polygon", "coordinates": []}, zone_type="residential"), GEOJSON, {}, 400),
    ("POST", FZ, feature({"type": "Polygon", "coordinates": "x"}, zone_type="residential"), GEOJSON, {}, 400),
    ("POST", FZ, feature(None, zone_type="residential"), GEOJSON, {}, 400),
    ("POST", FZ, {"type": "Feature", "properties": {"zone_type": "residential"}}, GEOJSON, {}, 400),
    ("POST", FZ, {**GOOD, "properties": [1]}, GEOJSON, {}, 400),
    ("POST", FZ, GOOD, "text/plain", {}, 415), ("POST", FZ, GOOD, "application/xml", {}, 415),
    ("POST", FZ, GOOD, "application/x-www-form-urlencoded", {}, 415),
    ("POST", FZ, "{broken", GEOJSON, {}, 400), ("POST", FZ, "", GEOJSON, {}, 400),
    ("POST", FZ, b"\xff\xfe", GEOJSON, {}, 400),
    ("POST", FZ, [GOOD], GEOJSON, {}, 400), ("POST", FZ, "\"Feature\"", GEOJSON, {}, 400),
    ("POST", FZ, {"type": "FeatureCollection", "features": [GOOD]}, GEOJSON, {}, 400),
    ("POST", FZ, GOOD, GEOJSON, {"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/9999>"}, 400),
    ("POST", FZ, GOOD, GEOJSON, {"Content-Crs": "<urn:nope>"}, 400),
    ("POST", FZ, feature(square(1e30, 1e30, 1.0), zone_type="x"), GEOJSON, {"Content-Crs": f"<{MSK}>"}, 400),
    ("POST", FZ, b"x" * (11 * 1024 * 1024), GEOJSON, {}, (413, 400)),
    ("POST", FZ + "?foo=1", GOOD, GEOJSON, {}, 400),
    ("POST", "/collections/nope/items", GOOD, GEOJSON, {}, 404),
    ("POST", B, GOOD, GEOJSON, {}, 405),
    ("POST", B, "{bad", CQL_JSON, {}, 400), ("POST", B, "[]", CQL_JSON, {}, 400),
    ("POST", B, '{"op": "=", "args": [{"property": "floors;DROP TABLE cdt.buildings"}, 1]}', CQL_JSON, {}, 400),
    ("POST", B, b"x" * (11 * 1024 * 1024), CQL_JSON, {}, (413, 400)),
    ("PUT", B + "/{fid}", GOOD, GEOJSON, {}, 405), ("PATCH", B + "/{fid}", GOOD, MERGE, {}, 405),
    ("DELETE", B + "/{fid}", None, None, {}, 405), ("POST", B + "/{fid}/history/1/revert", None, None, {}, 405),
    ("PUT", FZ + "/{zone}", GOOD, GEOJSON, {"If-Match": "{stale}"}, 412),
    ("PATCH", FZ + "/{zone}", {"properties": {"name": "c"}}, MERGE, {"If-Match": "{stale}"}, 412),
    ("PATCH", FZ + "/{zone}", {"properties": {"name": "c"}}, MERGE, {"If-Match": '"garbage"'}, 412),
    ("DELETE", FZ + "/{zone}", None, None, {"If-Match": "{stale}"}, 412),
    ("POST", FZ + "/{zone}/history/1/revert", None, None, {"If-Match": "{stale}"}, 412),
    ("PATCH", FZ + "/{zone}", {"properties": {"name": "c"}}, "text/plain", {}, 415),
    ("PUT", FZ + "/{zone}", GOOD, MERGE, {}, 415),
    ("PATCH", FZ + "/{zone}", "{broken", MERGE, {}, 400), ("PATCH", FZ + "/{zone}", [1], MERGE, {}, 400),
    ("PATCH", FZ + "/{zone}", {"properties": {"zone_type": None}}, MERGE, {}, 400),
    ("PATCH", FZ + "/{zone}", {"properties": {"status": "bogus"}}, MERGE, {}, 400),
    ("PATCH", FZ + "/{zone}", {"properties": {"nope": 1}}, MERGE, {}, 400),
    ("PATCH", FZ + "/{zone}", {"geometry": None}, MERGE, {}, 400),
    ("PATCH", FZ + "/{zone}", {"geometry": BOWTIE}, MERGE, {}, 400),
    ("PATCH", FZ + "/{zone}", {"geometry": {"type": "Point", "coordinates": [39.9, 59.2]}}, MERGE, {}, 400),
    ("PUT", FZ + "/{zone}", feature(square(39.9, 59.2)), GEOJSON, {}, 400),
    ("PUT", FZ + "/{zone}", GOOD, GEOJSON, {"Content-Crs": "<urn:nope>"}, 400),
    ("PUT", FZ + "/999999999", GOOD, GEOJSON, {}, 404), ("PUT", FZ + "/abc", GOOD, GEOJSON, {}, 404),
    ("DELETE", FZ + "/999999999", None, None, {}, 404),
    ("DELETE", FZ + "/" + quote("1 OR 1=1", safe=""), None, None, {}, 404),
    ("POST", FZ + "/{zone}/history/99/revert", None, None, {}, 404),
    ("POST", FZ + "/{zone}/history/abc/revert", None, None, {}, 404),
    ("POST", FZ + "/{zone}/history/99999999999999999999/revert", None, None, {}, 404),
]


@pytest.mark.parametrize("method, path, body, content_type, headers, status", BAD_WRITES,
                         ids=[f"{m} {p} {ct} {i}" for i, (m, p, _, ct, _, _) in enumerate(BAD_WRITES)])
def test_bad_edit_is_refused(editor, engine, zone, unchanged, method, path, body, content_type, headers, status):
    fid, stale, _ = zone
    url = path.format(fid=first_building(engine), zone=fid)
    headers = {k: v.format(stale=stale) for k, v in headers.items()}
    kwargs = {"headers": headers}
    if body is not None:
        kwargs.update(data=_body(body), content_type=content_type)
    assert_ogc_error(editor.open(url, method=method, **kwargs), status)


def test_invalid_geometry_names_the_postgis_reason(editor, engine, unchanged):
    reason = scalar(engine, "SELECT ST_IsValidReason(ST_GeomFromGeoJSON(:g))", g=json.dumps(BOWTIE))
    assert reason and reason != "Valid Geometry"
    body = assert_ogc_error(editor.post(FZ, data=json.dumps(feature(BOWTIE, zone_type="residential")),
                                        content_type=GEOJSON), 400)
    assert reason in body["description"]
    body = assert_ogc_error(editor.post(FZ, data=json.dumps(feature({"type": "Point", "coordinates": [39.9, 59.2]},
                                                                    zone_type="residential")),
                                        content_type=GEOJSON), 400)
    assert "Point" in body["description"]


def test_oversized_body_is_refused(client, editor, unchanged):
    # Who may edit is decided before the body is read: anonymous gets 401, an editor 413.
    for who, status in ((client, 401), (editor, 413)):
        resp = who.post(FZ, data=b" " * (11 * 1024 * 1024), content_type=GEOJSON)
        assert_ogc_error(resp, status)


# --- who may edit: anonymous and bad credentials 401, signed in without an editing role 403 ------------------
EDITS = [  # (method, path, body, content type); {zone} is the `zone` fixture's feature, sent with its ETag
    ("POST", FZ, GOOD, GEOJSON),
    ("PUT", FZ + "/{zone}", GOOD, GEOJSON),
    ("PATCH", FZ + "/{zone}", {"properties": {"name": "c"}}, MERGE),
    ("DELETE", FZ + "/{zone}", None, None),
    ("POST", FZ + "/{zone}/history/1/revert", None, None),
]


def _edit(who, zone, method, path, body, content_type, headers):
    fid, _, current = zone
    headers = {**headers, **({"If-Match": current} if "{zone}" in path else {})}
    kwargs = {"data": _body(body), "content_type": content_type} if body is not None else {}
    return who.open(path.format(zone=fid), method=method, headers=headers, **kwargs)


@pytest.mark.parametrize("authorization", [None, "Bearer cdt_no-such-token", "Bearer ", "Basic dDpmZWRlcmFs",
                                           "{federal}"],
                         ids=["anonymous", "unknown-token", "empty-token", "basic", "token-without-scheme"])
@pytest.mark.parametrize("method, path, body, content_type", EDITS, ids=[f"{m} {p}" for m, p, _, _ in EDITS])
def test_edit_without_valid_credentials_is_unauthorized(client, engine, tokens, zone, unchanged, method, path,
                                                        body, content_type, authorization):
    headers = {"Authorization": authorization.format(federal=tokens["t_federal"])} if authorization else {}
    resp = _edit(client, zone, method, path, body, content_type, headers)
    assert assert_ogc_error(resp, 401)["code"] == "Unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(f"{FZ}/{zone[0]}").headers["ETag"] == zone[2]  # the feature is as it was


@pytest.mark.parametrize("login", ["t_analyst_vologda", "t_enterprise", "t_energy_vologda"])
@pytest.mark.parametrize("method, path, body, content_type", EDITS, ids=[f"{m} {p}" for m, p, _, _ in EDITS])
def test_edit_by_a_role_without_editing_rights_is_forbidden(client, engine, tokens, zone, unchanged, method, path,
                                                            body, content_type, login):
    resp = _edit(client, zone, method, path, body, content_type, bearer(tokens[login]))
    assert assert_ogc_error(resp, 403)["code"] == "Forbidden"
    assert client.get(f"{FZ}/{zone[0]}").headers["ETag"] == zone[2]
