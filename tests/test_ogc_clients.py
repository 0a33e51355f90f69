"""Real GIS clients against a real CDT server: GDAL's OAPIF driver (through pyogrio) and OWSLib.

No mocks: CDT runs on a real HTTP server (werkzeug, in a thread) over the test database, and a small WSGI
middleware records every request that reaches it, so the tests check both what the clients got back
(against PostGIS) and what they actually asked the server for.

GDAL runs in a spawned worker process: pyogrio keeps the GIL while GDAL's OAPIF driver waits on HTTP, so a
read from this process would starve the server thread that has to answer it (a deadlock).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qs

import pyogrio
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers import registry
from tests.conftest import bearer, live_server, scalar, table_fingerprints

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
UTM37 = "http://www.opengis.net/def/crs/EPSG/0/32637"  # the UTM zone of Vologda
BBOX = (39.85, 59.20, 39.90, 59.23)  # central Vologda, lon/lat
PAGE = 5000
TIMEOUT = 300  # seconds for one GDAL call
PUBLIC = [layer.name for layer in registry.all_layers() if layer.access == "public"]
# Requests a test made on purpose to be refused (indices into Recorder.seen), for test_no_request_failed...
REFUSED_ON_PURPOSE: set[int] = set()


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    content_type: str
    status: int
    authorization: str = ""

    def args(self) -> dict[str, list[str]]:
        return parse_qs(self.query)


class Recorder:
    """WSGI middleware: every request (method, path, query string, Content-Type) and its status."""

    def __init__(self, app):
        self.app = app
        self.seen: list[Seen] = []

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            self.seen.append(Seen(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                                  environ.get("QUERY_STRING", ""), environ.get("CONTENT_TYPE", ""),
                                  int(status.split()[0]), environ.get("HTTP_AUTHORIZATION", "")))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)

    def mark(self) -> int:
        return len(self.seen)

    def since(self, mark: int, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [s for s in self.seen[mark:] if (method is None or s.method == method)
                and (path is None or s.path == path)]


@pytest.fixture(scope="module")
def server(db_url):
    """CDT on a free 127.0.0.1 port, for the whole module; yields (base URL, recorder)."""
    app = create_app(Config.from_env(), database_url=db_url)
    recorder = Recorder(app)
    with live_server(recorder, "cdt-ogc-clients") as url, pytest.MonkeyPatch.context() as mp:
        for var in ("NO_PROXY", "no_proxy"):  # libcurl (GDAL) and requests (OWSLib) must not use a proxy
            mp.setenv(var, ",".join(filter(None, [os.environ.get(var), "127.0.0.1", "localhost"])))
        yield url, recorder
    app.extensions["cdt_engine"].dispose()


@pytest.fixture
def base(server) -> str:
    return server[0]


@pytest.fixture
def seen(server) -> Recorder:
    return server[1]


def pages(requests: list[Seen]) -> list[Seen]:
    """The data pages GDAL fetched (not its 20-feature schema probe)."""
    return [s for s in requests if s.args().get("limit") != ["20"]]


# --- GDAL OAPIF driver through pyogrio ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gdal_worker(server):
    """A process of its own for GDAL (see the module docstring); created after `server` set NO_PROXY."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


@pytest.fixture(scope="module")
def gdal(gdal_worker):
    """gdal(pyogrio.function, *args, **kwargs), run in the GDAL worker; pyogrio passes extra keyword
    arguments of read_dataframe to GDAL as dataset open options (PAGE_SIZE, CRS ...)."""

    def call(fn, *args, **kwargs):
        return gdal_worker.submit(fn, *args, **kwargs).result(timeout=TIMEOUT)

    return call


@pytest.fixture(scope="module")
def buildings_crs84(server, gdal):
    """The whole buildings layer, read by GDAL in CRS84 with PAGE_SIZE (an open option), and the requests made."""
    base, recorder = server
    mark = recorder.mark()
    df = gdal(pyogrio.read_dataframe, f"OAPIF:{base}", layer="buildings", fid_as_index=True, PAGE_SIZE=str(PAGE))
    return df, recorder.since(mark)


def test_gdal_lists_every_collection(base, seen, gdal, tokens):
    """Anonymous GDAL sees the public collections; signed in as t_federal, every collection. (GDAL >= 3.9 sends
    a Bearer token with GDAL_HTTP_AUTH=BEARER; GDAL_HTTP_HEADERS does not reach OAPIF, which sets its own.)"""
    mark = seen.mark()
    layers = gdal(pyogrio.list_layers, f"OAPIF:{base}")
    assert {name for name, _ in layers} == set(PUBLIC)
    assert dict(layers)["buildings"] == "MultiPolygon"
    paths = [s.path for s in seen.since(mark, "GET")]
    assert paths[:3] == ["/collections", "/", "/api"]
    assert all(s.status == 200 and not s.authorization for s in seen.since(mark))

    header = bearer(tokens["t_federal"])["Authorization"]
    mark = seen.mark()
    gdal(pyogrio.set_gdal_config_options, {"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": tokens["t_federal"]})
    try:
        layers = gdal(pyogrio.list_layers, f"OAPIF:{base}")
    finally:
        gdal(pyogrio.set_gdal_config_options, {"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})
    assert {name for name, _ in layers} == {layer.name for layer in registry.all_layers()}
    assert seen.since(mark) and all(s.status == 200 and s.authorization == header for s in seen.since(mark))


def test_gdal_reads_all_buildings_with_paging(buildings_crs84, engine):
    df, requests = buildings_crs84
    assert len(df) == 25324 == scalar(engine, "SELECT count(*) FROM cdt.buildings")
    assert df.index.is_unique
    assert df.crs.equals("OGC:CRS84")
    assert int(df["residents"].sum()) == scalar(engine, "SELECT sum(residents) FROM cdt.buildings") > 0
    data = pages([s for s in requests if s.path == "/collections/buildings/items"])
    assert all(s.args()["limit"] == [str(PAGE)] for s in data)
    # The first page, then one per rel=next link (which carries offset), until the last page has no next link.
    offsets = [int(s.args().get("offset", ["0"])[0]) for s in data]
    assert offsets == list(range(0, 25324, PAGE)) and len(offsets) >= 6
    assert all(s.status == 200 for s in requests)


def test_gdal_bbox_goes_to_the_server(base, seen, engine, gdal):
    mark = seen.mark()
    df = gdal(pyogrio.read_dataframe, f"OAPIF:{base}", layer="buildings", bbox=BBOX)
    expected = scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE ST_Intersects(geom, "
                              "ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))", x0=BBOX[0], y0=BBOX[1], x1=BBOX[2],
                      y1=BBOX[3])
    assert 1000 < len(df) == expected < 25324
    data = pages(seen.since(mark, "GET", "/collections/buildings/items"))
    assert data, "GDAL made no items request"
    for s in data:
        assert [float(v) for v in s.args()["bbox"][0].split(",")] == pytest.approx(BBOX)
        assert s.args().get("bbox-crs", [CRS84]) == [CRS84]
    # The server filtered: GDAL fetched about as many features as match, not all 25,324.
    assert len(data) == -(-expected // 1000)


@pytest.mark.parametrize(("where", "cql"), [
    ("floors >= 9", "floors >= 9"),
    ("floors >= 9 AND source = 'vologda/buildings'", "(floors >= 9) AND (source = 'vologda/buildings')"),
])
def test_gdal_where_is_sent_as_a_cql_filter(base, seen, engine, gdal, where, cql):
    """GDAL pushes a WHERE clause to the server only on properties it finds as query parameters of
    /collections/buildings/items in /api, and only as filter-lang=cql-text when that path offers it."""
    mark = seen.mark()
    df = gdal(pyogrio.read_dataframe, f"OAPIF:{base}", layer="buildings", where=where)
    assert len(df) == scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE floors >= 9") > 0
    assert (df["floors"] >= 9).all()
    data = pages(seen.since(mark, "GET", "/collections/buildings/items"))
    assert len(data) == 1  # 387 features: one page, filtered by the server
    assert data[0].args()["filter"] == [cql]
    assert data[0].args()["filter-lang"] == ["cql-text"]
    assert data[0].status == 200


def test_api_documents_queryables_as_parameters_of_each_collection(base):
    import requests

    doc = requests.get(f"{base}/api", timeout=30).json()
    params = {p["name"]: p for p in doc["paths"]["/collections/buildings/items"]["get"]["parameters"]}
    assert params["floors"]["schema"] == {"type": "integer"} and params["floors"]["in"] == "query"
    assert "cql-text" in params["filter-lang"]["schema"]["enum"]
    assert "collectionId" not in params
    assert all(f"/collections/{layer.name}/items" in doc["paths"] for layer in registry.all_layers())


def test_gdal_reads_in_utm_with_crs_open_option(base, seen, gdal, buildings_crs84):
    mark = seen.mark()
    utm = gdal(pyogrio.read_dataframe, f"OAPIF:{base}", layer="buildings", fid_as_index=True, CRS="EPSG:32637",
               PAGE_SIZE=str(PAGE))
    assert utm.crs.to_epsg() == 32637
    data = pages(seen.since(mark, "GET", "/collections/buildings/items"))
    assert data and all(s.args()["crs"] == [UTM37] for s in data)

    lonlat = buildings_crs84[0]
    assert len(utm) == len(lonlat) == 25324
    assert utm.index.equals(lonlat.index)
    got = shapely.get_coordinates(utm.geometry.values)
    x0, y0, x1, y1 = utm.total_bounds
    assert 500_000 < x0 < x1 < 600_000 and 6_550_000 < y0 < y1 < 6_580_000  # metres, not degrees
    src = shapely.get_coordinates(lonlat.geometry.values)
    assert got.shape == src.shape
    ex, ey = Transformer.from_crs("OGC:CRS84", "EPSG:32637", always_xy=True).transform(src[:, 0], src[:, 1])
    assert abs(got[:, 0] - ex).max() < 0.05 and abs(got[:, 1] - ey).max() < 0.05


# --- OWSLib ------------------------------------------------------------------------------------------------


@pytest.fixture
def owslib_features(base):
    """OWSLib's Features client; OWSLib keeps its request headers in a module-level dict that
    collection_item_create() writes Content-Type into, so that dict is restored afterwards."""
    import owslib.ogcapi
    from owslib.ogcapi.features import Features

    saved = dict(owslib.ogcapi.REQUEST_HEADERS)
    yield Features(base)
    owslib.ogcapi.REQUEST_HEADERS.clear()
    owslib.ogcapi.REQUEST_HEADERS.update(saved)


@pytest.fixture
def owslib_editor(base, tokens):
    """OWSLib's Features client signed in as t_federal: `headers=` (OWSLib 0.35) go with every request of the
    client. OWSLib merges them into its module-level REQUEST_HEADERS, so that dict is restored afterwards
    (no later client may inherit the token)."""
    import owslib.ogcapi
    from owslib.ogcapi.features import Features

    saved = dict(owslib.ogcapi.REQUEST_HEADERS)
    yield Features(base, headers=bearer(tokens["t_federal"]))
    owslib.ogcapi.REQUEST_HEADERS.clear()
    owslib.ogcapi.REQUEST_HEADERS.update(saved)


def fingerprints(engine) -> dict[str, str]:
    """conftest.table_fingerprints, except a token's last_used_at (any use of a token marks it, at most once a
    minute)."""
    found = table_fingerprints(engine)
    found["api_tokens"] = scalar(engine, "SELECT count(*) || ':' || coalesce(md5(string_agg((to_jsonb(x) - "
                                         "'last_used_at')::text, '|' ORDER BY x.id)), '') FROM cdt.api_tokens x")
    return found


def test_owslib_reads_landing_conformance_and_collections(owslib_features, seen):
    mark = seen.mark()
    w = owslib_features
    assert {link["rel"] for link in w.links} >= {"self", "service-desc", "conformance", "data"}
    conforms = set(w.conformance()["conformsTo"])
    for cls in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
                "ogcapi-features-3/1.0/conf/filter", "cql2/1.0/conf/cql2-text",
                "ogcapi-features-4/1.0/conf/create-replace-delete"):
        assert any(c.endswith(cls) for c in conforms), cls
    assert w.api()["openapi"].startswith("3.0")
    ids = [c["id"] for c in w.collections()["collections"]]
    assert ids == PUBLIC  # anonymous: the public collections only
    assert w.feature_collections() == ids
    assert w.collection("buildings")["id"] == "buildings"
    assert "floors" in w.collection_queryables("buildings")["properties"]
    assert [(s.method, s.path) for s in seen.since(mark)] == [
        ("GET", "/conformance"), ("GET", "/api"), ("GET", "/collections"), ("GET", "/collections"),
        ("GET", "/collections/buildings"), ("GET", "/collections/buildings/queryables")]
    assert all(s.status == 200 for s in seen.since(mark))


def test_owslib_items_with_bbox(owslib_features, seen, engine):
    mark = seen.mark()
    page = owslib_features.collection_items("buildings", bbox=list(BBOX), limit=100)
    expected = scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE ST_Intersects(geom, "
                              "ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))", x0=BBOX[0], y0=BBOX[1], x1=BBOX[2],
                      y1=BBOX[3])
    assert page["numberMatched"] == expected and page["numberReturned"] == len(page["features"]) == 100
    assert "next" in {link["rel"] for link in page["links"]}
    (req,) = seen.since(mark)
    assert req.path == "/collections/buildings/items"
    assert req.args()["bbox"] == [",".join(map(str, BBOX))] and req.args()["limit"] == ["100"]


def test_owslib_items_with_cql2_text_filter(owslib_features, seen, engine):
    mark = seen.mark()
    page = owslib_features.collection_items("buildings", filter="floors >= 9 AND residents > 100", limit=1000)
    expected = scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE floors >= 9 AND residents > 100")
    assert 0 < page["numberMatched"] == page["numberReturned"] == expected
    assert all(f["properties"]["floors"] >= 9 and f["properties"]["residents"] > 100 for f in page["features"])
    (req,) = seen.since(mark)
    assert req.method == "GET" and req.args()["filter"] == ["floors >= 9 AND residents > 100"]
    assert "filter-lang" not in req.args()  # CQL2 text is the default


def test_owslib_items_with_cql2_json_filter(owslib_features, seen, engine):
    """OWSLib's `cql=` POSTs the CQL2 JSON to /items as application/json (pygeoapi's convention)."""
    mark = seen.mark()
    cql = {"op": "and", "args": [{"op": ">=", "args": [{"property": "floors"}, 9]},
                                 {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": list(BBOX)}]}]}
    page = owslib_features.collection_items("buildings", cql=cql, limit=1000)
    expected = scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE floors >= 9 AND ST_Intersects(geom, "
                              "ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))", x0=BBOX[0], y0=BBOX[1], x1=BBOX[2],
                      y1=BBOX[3])
    assert 0 < page["numberMatched"] == page["numberReturned"] == expected
    (req,) = seen.since(mark)
    assert (req.method, req.path, req.content_type, req.status) == (
        "POST", "/collections/buildings/items", "application/json", 200)


def _history(engine, fid: int) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT operation, version, actor, after ->> 'max_floors' FROM cdt.history "
            "WHERE collection = 'functional_zones' AND feature_id = :f ORDER BY id"), {"f": str(fid)})]


def test_owslib_anonymous_create_is_refused(owslib_features, seen, engine):
    """Without a token OWSLib's create gets a 401 with an OGC exception, and nothing is written."""
    before = fingerprints(engine)
    ring = [[39.880, 59.210], [39.885, 59.210], [39.885, 59.213], [39.880, 59.213], [39.880, 59.210]]
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
               "properties": {"zone_type": "residential", "name": "anonymous OWSLib zone"}}
    mark = seen.mark()
    with pytest.raises(RuntimeError) as refused:
        owslib_features.collection_item_create("functional_zones", feature)
    body = json.loads(str(refused.value))
    assert body["code"] == "Unauthorized" and body["description"]
    (req,) = seen.since(mark)
    assert (req.method, req.path, req.status, req.authorization) == (
        "POST", "/collections/functional_zones/items", 401, "")
    REFUSED_ON_PURPOSE.add(mark)
    assert fingerprints(engine) == before


def test_owslib_create_update_delete_functional_zone(owslib_editor, seen, engine):
    w = owslib_editor
    before = fingerprints(engine)
    with engine.connect() as conn:
        sequences = {s: conn.execute(text(f"SELECT last_value, is_called FROM {s}")).one()
                     for s in ("cdt.functional_zones_id_seq", "cdt.history_id_seq")}
    ring = [[39.880, 59.210], [39.885, 59.210], [39.885, 59.213], [39.880, 59.213], [39.880, 59.210]]
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
               "properties": {"zone_type": "residential", "name": "OWSLib test zone", "status": "planned",
                              "max_floors": 9}}
    mark = seen.mark()
    fid = None
    try:
        # create
        assert w.collection_item_create("functional_zones", feature) is True
        location = w.response_headers["Location"]
        fid = int(location.rsplit("/", 1)[1])
        assert location == f"{w.url}collections/functional_zones/items/{fid}"
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT z.zone_type, z.name, z.status, z.max_floors, z.version, ST_GeometryType(z.geom) AS type, "
                "ST_XMin(z.geom) AS x0, ST_YMin(z.geom) AS y0, ST_XMax(z.geom) AS x1, ST_YMax(z.geom) AS y1, "
                "t.oktmo FROM cdt.functional_zones z LEFT JOIN cdt.territories t ON t.id = z.territory_id "
                "WHERE z.id = :id"), {"id": fid}).one()
        assert (row.zone_type, row.name, row.status, row.max_floors, row.version, row.type) == (
            "residential", "OWSLib test zone", "planned", 9, 1, "ST_MultiPolygon")
        assert [row.x0, row.y0, row.x1, row.y1] == pytest.approx([39.880, 59.210, 39.885, 59.213], abs=1e-9)
        assert row.oktmo == "19701000"  # placed in Vologda by CDT itself
        assert _history(engine, fid) == [("INSERT", 1, "user:t_federal", "9")]

        # read back, change, replace (PUT)
        current = w.collection_item("functional_zones", str(fid))
        assert current["properties"]["max_floors"] == 9 and current["properties"]["version"] == 1
        current["properties"]["max_floors"] = 12
        assert w.collection_item_update("functional_zones", str(fid), current) is True
        assert w.response_headers["ETag"].startswith(f'"{fid}.2.')
        assert scalar(engine, "SELECT max_floors * 100 + version FROM cdt.functional_zones WHERE id = :id",
                      id=fid) == 1202
        assert _history(engine, fid)[1:] == [("UPDATE", 2, "user:t_federal", "12")]

        # delete
        assert w.collection_item_delete("functional_zones", str(fid)) is True
        assert scalar(engine, "SELECT count(*) FROM cdt.functional_zones WHERE id = :id", id=fid) == 0
        assert _history(engine, fid)[2:] == [("DELETE", 2, "user:t_federal", None)]
    finally:
        if fid is not None:  # leave the database as it was: no zone, no history, sequences back
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM cdt.functional_zones WHERE id = :id"), {"id": fid})
                conn.execute(text("DELETE FROM cdt.history WHERE collection = 'functional_zones' "
                                  "AND feature_id = :f"), {"f": str(fid)})
                for seq, (value, called) in sequences.items():
                    conn.execute(text("SELECT setval(CAST(:s AS regclass), :v, :c)"), {"s": seq, "v": value,
                                                                                        "c": called})
    path = f"/collections/functional_zones/items/{fid}"
    requests = seen.since(mark)
    assert [(s.method, s.path, s.status) for s in requests] == [
        ("POST", "/collections/functional_zones/items", 201), ("GET", path, 200), ("PUT", path, 200),
        ("DELETE", path, 204)]
    assert [s.content_type for s in requests if s.method in ("POST", "PUT")] == ["application/geo+json"] * 2
    assert {s.authorization for s in requests} == {w.headers["Authorization"]}  # the token, on every request
    assert fingerprints(engine) == before


def test_no_request_failed_on_the_server(seen):
    """Across everything the clients did in this module, the server never answered with an error (but for the
    requests made to be refused)."""
    assert seen.seen
    assert [s for i, s in enumerate(seen.seen) if s.status >= 400 and i not in REFUSED_ON_PURPOSE] == []
