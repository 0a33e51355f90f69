"""OGC API Tiles against PostGIS: MVT content, zoom ranges, errors, ETags, the tile cache and its exact invalidation.

The module has its own database with the demo city (edits here must not touch other tests' data).
Central Vologda is about 39.89 E, 59.22 N.
"""

from __future__ import annotations

import hashlib

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely import wkb
from shapely.affinity import translate
from shapely.geometry import box, shape
from sqlalchemy import Connection, Engine, text

from geoserver_app.app import create_app
from geoserver_app.config import PROJECT_ROOT, Config
from geoserver_app.tiles_api import CONFORMANCE, MAX_AGE
from layers import registry, tiles
from layers.db import engine_for, transaction
from tests.conftest import bearer

WM = morecantile.tms.get("WebMercatorQuad")
CRS84 = morecantile.tms.get("WorldCRS84Quad")
CENTRE = (39.89, 59.22)
MVT = "application/vnd.mapbox-vector-tile"


@pytest.fixture(scope="module")
def eng(make_database):
    from layers.ingest.demo import load_demo

    url = make_database()
    engine = engine_for(url)
    load_demo(engine, PROJECT_ROOT / "data", actor="test:tiles", echo=lambda _msg: None)
    # Vacuumed and analysed now, so autovacuum (whose lock makes a renderer skip caching) leaves the
    # tables alone while the cache tests run.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def client(eng):
    return create_app(Config.from_env(), database_url=eng.url.render_as_string(hide_password=False)).test_client()


@pytest.fixture(scope="module")
def federal(eng) -> dict[str, str]:
    """Headers of a federal user of this module's database (conftest's `tokens` live in the main one)."""
    from layers import accounts

    token = accounts.new_token()
    with eng.begin() as conn:
        uid = conn.execute(text("INSERT INTO cdt.users (login, display_name) VALUES ('t_federal', 't_federal') "
                                "RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO cdt.grants (user_id, role) VALUES (:u, 'federal')"), {"u": uid})
        conn.execute(text("INSERT INTO cdt.api_tokens (user_id, name, token_hash) VALUES (:u, 'tests', :h)"),
                     {"u": uid, "h": accounts.hash_token(token)})
    return bearer(token)


@pytest.fixture
def cache(eng):
    """An empty tile cache at the start of the test, emptied again at its end (the test may change settings)."""
    tiles.clear_cache(eng)
    yield eng
    tiles.clear_cache(eng)


def tile_url(tileset: str, z: int, x: int, y: int, tms: str = "WebMercatorQuad") -> str:
    base = "/tiles" if tileset == tiles.BASEMAP else f"/collections/{tileset}/tiles"
    return f"{base}/{tms}/{z}/{y}/{x}"


def centre_tile(z: int, tms=WM) -> morecantile.Tile:
    return tms.tile(*CENTRE, z)


def decode(resp) -> dict:
    assert resp.status_code == 200 and resp.mimetype == MVT, (resp.status_code, resp.data[:200])
    return mapbox_vector_tile.decode(resp.data)


def cached_keys(db: Engine | Connection) -> set[tuple]:
    """The cached tiles: as committed (an engine), or as a transaction sees them (its connection)."""
    if isinstance(db, Engine):
        with db.connect() as conn:
            return cached_keys(conn)
    return {tuple(row) for row in db.execute(text("SELECT tileset, tms, z, x, y FROM cdt.tile_cache"))}


def bounds_lonlat(tms, z: int, x: int, y: int):
    """The tile envelope plus its 64/4096 buffer, in lon/lat: computed here independently of the SQL."""
    b = tms.xy_bounds(morecantile.Tile(x, y, z))
    pad = (b.right - b.left) * tiles.BUFFER / tiles.EXTENT
    (w, s), (e, n) = tms.lnglat(b.left - pad, b.bottom - pad), tms.lnglat(b.right + pad, b.top + pad)
    return box(w, s, e, n)


def geometry(eng, table: str, fid: int, column: str = "geom"):
    with eng.connect() as conn:
        return wkb.loads(bytes(conn.execute(text(f"SELECT ST_AsBinary({column}) FROM cdt.{table} WHERE id = :i"),
                                            {"i": fid}).scalar_one()))


# --- metadata -----------------------------------------------------------------------------------------


def test_tile_matrix_sets(client):
    body = client.get("/tileMatrixSets").get_json()
    ids = {s["id"] for s in body["tileMatrixSets"]}
    assert {"WebMercatorQuad", "WorldCRS84Quad"} <= ids
    assert all(s["links"][0]["href"].startswith("http://localhost/tileMatrixSets/") for s in body["tileMatrixSets"])
    wm = client.get("/tileMatrixSets/WebMercatorQuad").get_json()
    assert wm["id"] == "WebMercatorQuad" and wm["crs"].endswith("EPSG/0/3857") and len(wm["tileMatrices"]) == 25
    crs84 = client.get("/tileMatrixSets/WorldCRS84Quad").get_json()
    assert crs84["tileMatrices"][0]["matrixWidth"] == 2 and crs84["tileMatrices"][0]["matrixHeight"] == 1
    resp = client.get("/tileMatrixSets/NoSuchSet")
    assert resp.status_code == 404 and resp.get_json()["code"] == "NotFound"


def test_collection_tilesets_and_tileset_metadata(client):
    listing = client.get("/collections/buildings/tiles").get_json()
    assert {t["tileMatrixSetURI"].rsplit("/", 1)[1] for t in listing["tilesets"]} >= {"WebMercatorQuad",
                                                                                        "WorldCRS84Quad"}
    for entry in listing["tilesets"]:
        rels = {lk["rel"] for lk in entry["links"]}
        assert {"self", "item", "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"} <= rels
        assert all(lk["href"].startswith("http://localhost/") for lk in entry["links"])

    doc = client.get("/collections/buildings/tiles/WebMercatorQuad").get_json()
    assert doc["dataType"] == "vector" and doc["crs"].endswith("EPSG/0/3857")
    (layer,) = doc["layers"]
    assert layer["id"] == "buildings" and layer["minTileMatrix"] == "13" and layer["geometryDimension"] == 2
    assert {"id", "floors"} <= set(layer["propertiesSchema"]["properties"])
    item = next(lk for lk in doc["links"] if lk["rel"] == "item")
    assert item["templated"] and item["type"] == MVT
    assert item["href"] == "http://localhost/collections/buildings/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}"
    (west, south), (east, north) = doc["boundingBox"]["lowerLeft"], doc["boundingBox"]["upperRight"]
    assert west < CENTRE[0] < east and south < CENTRE[1] < north
    # Other tile matrix sets are matched to the registry's zooms by scale: CRS84 zoom 12 ~ Web Mercator 13.
    crs84 = client.get("/collections/buildings/tiles/WorldCRS84Quad").get_json()
    assert crs84["layers"][0]["minTileMatrix"] == "12"


def test_dataset_tilesets_list_the_basemap(client):
    listing = client.get("/tiles").get_json()
    assert listing["tilesets"] and all(t["dataType"] == "vector" for t in listing["tilesets"])
    doc = client.get("/tiles/WebMercatorQuad").get_json()
    assert {"water", "street_edges", "buildings", "railways", "territories"} <= {lyr["id"] for lyr in doc["layers"]}


def test_tilejson(client):
    doc = client.get("/collections/buildings/tiles/WebMercatorQuad/tilejson.json").get_json()
    assert doc["tilejson"] == "3.0.0" and doc["minzoom"] == 13
    template = doc["tiles"][0]
    assert template == "http://localhost/collections/buildings/tiles/WebMercatorQuad/{z}/{y}/{x}"
    assert doc["vector_layers"][0]["id"] == "buildings" and doc["vector_layers"][0]["fields"]["floors"] == "Number"
    west, south, east, north = doc["bounds"]
    assert west < doc["center"][0] < east and south < doc["center"][1] < north
    t = centre_tile(16)
    path = template.format(z=16, x=t.x, y=t.y).removeprefix("http://localhost")
    assert "buildings" in decode(client.get(path))
    basemap = client.get("/tiles/WebMercatorQuad/tilejson.json").get_json()
    assert len(basemap["vector_layers"]) >= 5
    resp = client.get("/tiles/WorldCRS84Quad/tilejson.json")
    assert resp.status_code == 404 and resp.get_json()["code"] == "NotFound"


def test_api_and_conformance_document_tiles(client):
    paths = client.get("/api?f=json").get_json()["paths"]
    for path in ("/tileMatrixSets", "/tileMatrixSets/{tileMatrixSetId}", "/tiles", "/tiles/{tileMatrixSetId}",
                 "/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}", "/tiles/{tileMatrixSetId}/tilejson.json",
                 "/collections/{collectionId}/tiles", "/collections/{collectionId}/tiles/{tileMatrixSetId}",
                 "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
                 "/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json"):
        assert "get" in paths[path], path
    conforms = client.get("/conformance?f=json").get_json()["conformsTo"]
    assert set(CONFORMANCE) <= set(conforms)
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in CONFORMANCE


# --- tile content -------------------------------------------------------------------------------------


def test_buildings_tile_over_central_vologda(client, eng):
    t = centre_tile(16)
    layer = decode(client.get(tile_url("buildings", 16, t.x, t.y)))["buildings"]
    assert layer["extent"] == tiles.EXTENT
    ids = {f["id"] for f in layer["features"]}
    assert all(f["properties"]["id"] == f["id"] for f in layer["features"])
    assert all(set(f["properties"]) <= set(tiles.PROPERTIES["buildings"]) for f in layer["features"])
    assert any("floors" in f["properties"] for f in layer["features"])
    # Exactly the buildings whose footprint meets the tile's buffered envelope (no limit bites at z16).
    area = bounds_lonlat(WM, 16, t.x, t.y)
    with eng.connect() as conn:
        expected = set(conn.execute(text(
            "SELECT id FROM cdt.buildings WHERE ST_Intersects(geom, ST_GeomFromText(:wkt, 4326))"),
            {"wkt": area.wkt}).scalars())
    assert len(ids) > 20 and ids == expected


def test_point_and_line_layers(client):
    t = centre_tile(13)
    facilities = decode(client.get(tile_url("facilities", 13, t.x, t.y)))["facilities"]["features"]
    assert facilities and {f["properties"]["type_code"] for f in facilities} <= {"school", "kindergarten"}
    assert all(f["geometry"]["type"] == "Point" for f in facilities)
    streets = decode(client.get(tile_url("street_edges", 13, t.x, t.y)))["street_edges"]["features"]
    assert len(streets) > 100 and all("Line" in f["geometry"]["type"] for f in streets)


def test_basemap_has_several_layers(client):
    t = centre_tile(14)
    layers = decode(client.get(tile_url(tiles.BASEMAP, 14, t.x, t.y)))
    assert {"water", "street_edges", "buildings"} <= set(layers)
    # At zoom 10 buildings are out of their range; the city boundary is drawn as a line.
    t = centre_tile(10)
    layers = decode(client.get(tile_url(tiles.BASEMAP, 10, t.x, t.y)))
    assert "buildings" not in layers and {"street_edges", "territories"} <= set(layers)
    assert all("Line" in f["geometry"]["type"] for f in layers["territories"]["features"])


@pytest.mark.parametrize("layer", [lyr for lyr in registry.all_layers() if lyr.geometry_column],
                         ids=lambda lyr: lyr.name)
def test_every_collection_renders(client, federal, layer):
    """Every collection renders for a federal user; a non-public one is refused to anonymous callers (401)."""
    assert set(tiles.PROPERTIES[layer.name]) <= set(layer.table.columns.keys()) and "id" in tiles.PROPERTIES[layer.name]
    for tms in (WM, CRS84):
        z = min(max(layer.min_zoom, 14), layer.max_zoom)
        t = centre_tile(z, tms)
        url = tile_url(layer.name, z, t.x, t.y, tms.id)
        assert client.get(url, headers=federal).status_code in (200, 204)
        anonymous = client.get(url)
        if layer.access == "public":
            assert anonymous.status_code in (200, 204)
        else:
            assert anonymous.status_code == 401 and anonymous.get_json()["code"] == "Unauthorized"


def test_world_crs84_tiles(client):
    t = centre_tile(15, CRS84)
    features = decode(client.get(tile_url("buildings", 15, t.x, t.y, "WorldCRS84Quad")))["buildings"]["features"]
    assert len(features) > 20
    # Column 1 of matrix 0 exists in WorldCRS84Quad (2 x 1 tiles), not in WebMercatorQuad.
    assert client.get(tile_url("street_edges", 0, 1, 0, "WorldCRS84Quad")).status_code == 204  # out of zoom range
    assert client.get(tile_url("street_edges", 0, 1, 0)).status_code == 400


def test_outside_the_zoom_range_is_an_empty_tile(client):
    t = centre_tile(10)
    resp = client.get(tile_url("buildings", 10, t.x, t.y))  # buildings start at 13
    assert resp.status_code == 204 and resp.data == b"" and resp.headers["ETag"]
    t = centre_tile(17)
    assert client.get(tile_url("territories", 17, t.x, t.y)).status_code == 204  # territories end at 16
    assert client.get(tile_url("buildings", 16, 0, 0)).status_code == 204  # in range, no data there


@pytest.mark.parametrize("url, status", [
    ("/collections/buildings/tiles/NoSuchSet/15/0/0", 404),
    ("/collections/no_such_layer/tiles/WebMercatorQuad/15/0/0", 404),
    ("/collections/planning_norms/tiles/WebMercatorQuad/15/0/0", 404),
    ("/collections/buildings/tiles/WebMercatorQuad/25/0/0", 400),
    ("/collections/buildings/tiles/WebMercatorQuad/-1/0/0", 400),
    ("/collections/buildings/tiles/WebMercatorQuad/2/4/0", 400),
    ("/collections/buildings/tiles/WebMercatorQuad/2/0/4", 400),
    ("/collections/buildings/tiles/WebMercatorQuad/x/0/0", 400),
    ("/tiles/WorldCRS84Quad/0/0/2", 400),
    ("/tiles/WebMercatorQuad/1.5/0/0", 400),
])
def test_bad_tile_requests_are_ogc_errors(client, url, status):
    resp = client.get(url)
    assert resp.status_code == status
    assert resp.get_json()["code"] == {400: "InvalidParameterValue", 404: "NotFound"}[status]


def test_feature_limit_keeps_the_largest(client, cache, monkeypatch):
    monkeypatch.setitem(tiles.FEATURE_LIMITS, "buildings", {0: 10})
    t = centre_tile(14)
    features = decode(client.get(tile_url("buildings", 14, t.x, t.y)))["buildings"]["features"]
    area = bounds_lonlat(WM, 14, t.x, t.y)
    with cache.connect() as conn:
        largest = set(conn.execute(text(
            "SELECT id FROM cdt.buildings WHERE ST_Intersects(geom, ST_GeomFromText(:wkt, 4326)) "
            "ORDER BY footprint_m2 DESC NULLS LAST, id LIMIT 10"), {"wkt": area.wkt}).scalars())
    assert {f["id"] for f in features} == largest


def test_low_zooms_are_simplified(client, cache, monkeypatch):
    t = centre_tile(13)
    simplified = client.get(tile_url("buildings", 13, t.x, t.y)).data
    tiles.clear_cache(cache)
    monkeypatch.setattr(tiles, "SIMPLIFY_BELOW_ZOOM", 0)
    full = client.get(tile_url("buildings", 13, t.x, t.y)).data
    assert len(simplified) < len(full)


# --- HTTP caching and the tile cache -------------------------------------------------------------------


def test_etag_and_304(client, cache):
    t = centre_tile(15)
    url = tile_url("buildings", 15, t.x, t.y)
    resp = client.get(url)
    etag = resp.headers["ETag"]
    assert not etag.startswith("W/") and etag == f'"{hashlib.md5(resp.data).hexdigest()}"'
    assert resp.headers["Cache-Control"] == f"public, max-age={MAX_AGE}"
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert client.get(url, headers={"If-None-Match": '"something-else"'}).status_code == 200
    assert client.get(url, headers={"If-None-Match": f'"x", {etag}'}).status_code == 304


def test_second_request_is_served_from_the_cache(client, cache):
    t = centre_tile(15)
    url = tile_url(tiles.BASEMAP, 15, t.x, t.y)
    first = client.get(url)
    assert first.headers["X-Tile-Cache"] == "miss"
    with cache.connect() as conn:
        row = conn.execute(text(
            "SELECT data, etag, layers, ST_Contains(bounds, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) AS inside "
            "FROM cdt.tile_cache WHERE tileset = 'basemap' AND tms = 'WebMercatorQuad' AND z = 15 "
            "AND x = :x AND y = :y"),
            {"x": t.x, "y": t.y, "lon": CENTRE[0], "lat": CENTRE[1]}).one()
    assert bytes(row.data) == first.data and f'"{row.etag}"' == first.headers["ETag"]
    assert "buildings" in row.layers and row.inside
    second = client.get(url)
    assert second.headers["X-Tile-Cache"] == "hit" and second.data == first.data
    assert second.headers["ETag"] == first.headers["ETag"]


def test_empty_tiles_are_cached_too(client, cache):
    t = centre_tile(15)
    assert client.get(tile_url("functional_zones", 15, t.x, t.y)).status_code == 204
    assert ("functional_zones", "WebMercatorQuad", 15, t.x, t.y) in cached_keys(cache)
    assert client.get(tile_url("functional_zones", 15, t.x, t.y)).headers["X-Tile-Cache"] == "hit"


def test_open_write_transaction_prevents_caching(client, cache):
    """A tile rendered while an edit of its table is uncommitted is served but not stored: stored, it would
    outlive the invalidation that edit's commit stands for."""
    t = centre_tile(16)
    url = tile_url("buildings", 16, t.x, t.y)
    with transaction(cache, "test:tiles") as conn:
        conn.execute(text("UPDATE cdt.buildings SET floors = floors WHERE id = (SELECT min(id) FROM cdt.buildings)"))
        resp = client.get(url)
        assert resp.status_code == 200 and resp.headers["X-Tile-Cache"] == "miss"
        assert cached_keys(cache) == set()
        conn.rollback()
    client.get(url)
    assert cached_keys(cache) == {("buildings", "WebMercatorQuad", 16, t.x, t.y)}


def test_clear_cache(client, cache):
    t = centre_tile(15)
    for tileset in ("buildings", "water", tiles.BASEMAP):
        client.get(tile_url(tileset, 15, t.x, t.y))
    assert tiles.clear_cache(cache, "water") == 1
    assert {k[0] for k in cached_keys(cache)} == {"buildings", tiles.BASEMAP}
    assert tiles.clear_cache(cache) == 2 and cached_keys(cache) == set()


def test_invalidation_triggers_on_every_geometry_layer(eng):
    with eng.connect() as conn:
        triggers = set(conn.execute(text(
            "SELECT c.relname || '.' || g.tgname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
            "WHERE NOT g.tgisinternal AND g.tgfoid = 'cdt.invalidate_tiles'::regproc")).scalars())
    for layer in registry.all_layers():
        if layer.geometry_column:
            name = layer.table.name
            assert {f"{name}.{name}_tiles_{op}" for op in ("ins", "upd", "del", "trunc")} <= triggers, name


# --- exact invalidation --------------------------------------------------------------------------------


def _cache_around(client, lon: float, lat: float, tilesets: tuple[str, ...], zooms=(14, 15, 16), tms=WM) -> set:
    """Render (and so cache) the 3 x 3 tiles around a point for each tileset and zoom."""
    keys = set()
    for z in zooms:
        c = tms.tile(lon, lat, z)
        for x in (c.x - 1, c.x, c.x + 1):
            for y in (c.y - 1, c.y, c.y + 1):
                for tileset in tilesets:
                    assert client.get(tile_url(tileset, z, x, y, tms.id)).status_code in (200, 204)
                    keys.add((tileset, tms.id, z, x, y))
    return keys


def _touching(keys: set, tilesets: set[str], *shapes) -> set:
    """The cached tiles of these tilesets whose buffered envelope any of the shapes intersects."""
    tms_of = {"WebMercatorQuad": WM, "WorldCRS84Quad": CRS84}
    return {k for k in keys if k[0] in tilesets
            and any(bounds_lonlat(tms_of[k[1]], k[2], k[3], k[4]).intersects(s) for s in shapes)}


def test_moving_a_building_drops_exactly_the_tiles_it_touches(client, cache):
    with cache.connect() as conn:
        fid = conn.execute(text("SELECT id FROM cdt.buildings WHERE footprint_m2 BETWEEN 200 AND 2000 "
                                "ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 1"),
                           {"lon": CENTRE[0], "lat": CENTRE[1]}).scalar_one()
    old = geometry(cache, "buildings", fid)
    new = translate(old, xoff=0.0053)  # ~300 m east at 59.2 N
    lon, lat = old.centroid.x, old.centroid.y
    tilesets = ("buildings", tiles.BASEMAP, "street_edges", "water")
    before = _cache_around(client, lon, lat, tilesets) | _cache_around(client, lon, lat, ("buildings",), (15,), CRS84)
    gone = _touching(before, {"buildings", tiles.BASEMAP}, old, new)
    # The test means something: some tiles touch only the new place, and some touch neither.
    assert _touching(before, {"buildings"}, new) - _touching(before, {"buildings"}, old)
    assert gone and _touching(before, {"buildings"}, old, new) != {k for k in before if k[0] == "buildings"}

    try:
        with transaction(cache, "test:tiles") as conn:
            conn.execute(text("UPDATE cdt.buildings SET geom = ST_Translate(geom, 0.0053, 0) WHERE id = :i"),
                         {"i": fid})
        assert cached_keys(cache) == before - gone  # streets and water tiles stay: buildings are not in them

        # Re-fetched, each z16 tile holds the building exactly where its new footprint meets the tile.
        for key in sorted(k for k in before if k[0] == "buildings" and k[1] == "WebMercatorQuad" and k[2] == 16):
            _, _, z, x, y = key
            features = decode(client.get(tile_url("buildings", z, x, y)))["buildings"]["features"]
            assert (fid in {f["id"] for f in features}) == bounds_lonlat(WM, z, x, y).intersects(new), key
        c = WM.tile(new.centroid.x, new.centroid.y, 16)
        feature = next(f for f in decode(client.get(tile_url("buildings", 16, c.x, c.y)))["buildings"]["features"]
                       if f["id"] == fid)
        drawn = _to_lonlat(shape(feature["geometry"]), WM.xy_bounds(c))
        assert drawn.intersection(new).area / new.area > 0.95 and not drawn.intersects(old)
    finally:
        with transaction(cache, "test:tiles") as conn:
            conn.execute(text("UPDATE cdt.buildings SET geom = ST_GeomFromWKB(:g, 4326) WHERE id = :i"),
                         {"g": old.wkb, "i": fid})
    assert geometry(cache, "buildings", fid).equals_exact(old, 1e-9)


def _to_lonlat(geom, b):
    """Tile units (y up, as decoded) of a Web Mercator tile back to lon/lat."""
    to_4326 = Transformer.from_crs(3857, 4326, always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        x = b.left + xy[:, 0] / tiles.EXTENT * (b.right - b.left)
        y = b.bottom + xy[:, 1] / tiles.EXTENT * (b.top - b.bottom)
        return np.column_stack(to_4326.transform(x, y))

    return shapely.transform(geom, project)


def test_inserting_and_deleting_a_zone_drops_exactly_the_tiles_it_touches(client, cache):
    lon, lat = CENTRE
    zone = box(lon, lat, lon + 0.003, lat + 0.0015)  # ~170 x 170 m
    tilesets = ("functional_zones", tiles.BASEMAP, "buildings")
    before = _cache_around(client, lon + 0.0015, lat + 0.00075, tilesets)
    gone = _touching(before, {"functional_zones", tiles.BASEMAP}, zone)
    assert gone and before - gone
    with transaction(cache, "test:tiles") as conn:
        fid = conn.execute(text(
            "INSERT INTO cdt.functional_zones (zone_type, name, geom) "
            "VALUES ('residential', 'Test zone', ST_Multi(ST_GeomFromText(:wkt, 4326))) RETURNING id"),
            {"wkt": zone.wkt}).scalar_one()
    try:
        assert cached_keys(cache) == before - gone  # buildings tiles stay
        c = WM.tile(lon + 0.0015, lat + 0.00075, 16)
        (feature,) = decode(client.get(tile_url("functional_zones", 16, c.x, c.y)))["functional_zones"]["features"]
        assert feature["id"] == fid and feature["properties"]["zone_type"] == "residential"
        assert "functional_zones" in decode(client.get(tile_url(tiles.BASEMAP, 16, c.x, c.y)))
        refilled = cached_keys(cache)
    finally:
        with transaction(cache, "test:tiles") as conn:
            conn.execute(text("DELETE FROM cdt.functional_zones WHERE id = :i"), {"i": fid})
    assert cached_keys(cache) == refilled - _touching(refilled, {"functional_zones", tiles.BASEMAP}, zone)
    assert client.get(tile_url("functional_zones", 16, c.x, c.y)).status_code == 204


def test_bulk_change_elsewhere_keeps_the_cache(client, cache):
    """25,000 buildings loaded in another place in one statement: cached Vologda tiles all stay."""
    before = _cache_around(client, *CENTRE, ("buildings", tiles.BASEMAP), zooms=(16,))
    with transaction(cache, "test:tiles") as conn:
        conn.execute(text("INSERT INTO cdt.buildings (floors, geom, source, source_id) "
                          "SELECT floors, ST_Translate(geom, 10, 0), 'test:bulk', id::text FROM cdt.buildings"))
        assert cached_keys(conn) == before
        # ... and the same rows moved back onto the city drop the tiles they now cover, in the same statement.
        conn.execute(text("UPDATE cdt.buildings SET geom = ST_Translate(geom, -10, 0) "
                          "WHERE source = 'test:bulk' AND id % 10 = 0"))
        dropped = _touching(before, {"buildings", tiles.BASEMAP}, *_all_buildings(conn))
        assert dropped and cached_keys(conn) == before - dropped
        conn.rollback()
    assert cached_keys(cache) == before


def _all_buildings(conn) -> list:
    centre = box(CENTRE[0] - 0.02, CENTRE[1] - 0.01, CENTRE[0] + 0.02, CENTRE[1] + 0.01)
    return [wkb.loads(bytes(g)) for g in conn.execute(text(
        "SELECT ST_AsBinary(geom) FROM cdt.buildings "
        "WHERE source = 'test:bulk' AND id % 10 = 0 AND geom && ST_GeomFromText(:w, 4326)"),
        {"w": centre.wkt}).scalars()]
