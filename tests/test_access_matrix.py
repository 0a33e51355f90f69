"""The authorization matrix, over HTTP: every role x territory relation x layer class x operation.

Each cell is one test id: (user, layer class, relation, operation) -> allowed or denied, compared with what the
OGC API answers. The expectation comes from `expected()` below, an explicit table written from the rules in the
docstring of layers/access.py (and the editing roles of layers/registry.py), never by calling layers/access.py.

- Users: anonymous (citizen) and the accounts of conftest.TEST_USERS (one of each role; two municipalities).
- Layer classes: public `functional_zones`, internal `planned_facilities`, restricted `utility_lines` (energy).
- Relations, per user: "own" (a feature inside the territory of the grant), "child" (inside a child territory of
  it), "grandchild" (grants on the oblast: inside a district of its city), "other" (inside another
  municipality), "mine" (a feature the user created themself, placed in the "other" territory: what makes it an
  enterprise's own object). Features of the other relations are created by t_federal.
- Operations: list (`/items`), one (`/items/{id}`), tile (MVT at z12..z16), create (POST), replace (PUT),
  patch (PATCH), delete (DELETE), history (`/items/{id}/history`).
- Deny is 401 for anonymous; else 403, or 404 for a single feature (its existence does not leak: the answer is
  the one for an id that does not exist), or for lists and tiles the feature is absent.

The module has its own throwaway database (demo city + the changes below), so nothing here touches the data other
tests read. The demo has boundaries only for г Вологда: the fixture gives Вологодская обл and г Екатеринбург a
boundary (a box around them) and adds a city district under each city, so territory scopes can be checked by
geometry (edits) and by territory_id (restricted reads) alike. Every mutating cell works on fresh features and
removes what it made.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import mapbox_vector_tile
import morecantile
import pytest
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers.db import engine_for, transaction
from tests.conftest import DATA, bearer, make_test_users

GEOJSON = "application/geo+json"
MERGE = "application/merge-patch+json"
MISSING_ID = 2_000_000_000  # no feature has it
ZOOMS = (12, 13, 14, 15, 16)
WMQ = morecantile.tms.get("WebMercatorQuad")

# --- the expectation table (from the docstring of layers/access.py; editing roles from layers/registry.py) -----
CLASSES = {"public": "functional_zones", "internal": "planned_facilities", "restricted": "utility_lines"}
EDITING_ROLES = {"public": {"federal", "regional", "municipal"},
                 "internal": {"federal", "regional", "municipal", "enterprise"},
                 "restricted": {"federal", "regional", "municipal", "agency"}}
LAYER_SECTOR = {"public": None, "internal": None, "restricted": "energy"}
OFFICIALS = {"federal", "regional", "municipal", "agency", "analyst"}
READS = ("list", "one", "tile", "history")
WRITES = ("create", "replace", "patch", "delete")
IN_SCOPE = ("own", "child", "grandchild")


def expected(role: str, sector: str | None, cls: str, relation: str, op: str) -> bool:
    """Whether the documented rules allow `op` for this role on a feature of `cls` in `relation` to the user."""
    mine = relation == "mine"
    if op in READS:
        if cls == "public" or role == "federal":  # public: everybody; federal covers all territories
            return True
        if cls == "internal":  # every official or analyst, whatever the territory; an enterprise its own objects
            return role in OFFICIALS or (role == "enterprise" and mine)
        # restricted: within the territories of the grants (descendants included); agency only of its sector;
        # an enterprise only its own objects; the public nothing
        if role in ("regional", "municipal", "analyst"):
            return relation in IN_SCOPE
        if role == "agency":
            return sector == LAYER_SECTOR[cls] and relation in IN_SCOPE
        return role == "enterprise" and mine
    # editing: an editing role of the layer (agency: of its sector), old and new geometry within the territories
    # (federal anywhere; an enterprise places its own objects anywhere and edits only those)
    if role not in EDITING_ROLES[cls] or (role == "agency" and sector != LAYER_SECTOR[cls]):
        return False
    if role == "federal":
        return True
    if role == "enterprise":
        return op == "create" or mine
    return relation in IN_SCOPE


# --- who, and where their relations lie ----------------------------------------------------------------------
VOLOGDA_VIEW = {"own": "city", "child": "district", "other": "ekb"}
OBLAST_VIEW = {"own": "oblast", "child": "city", "grandchild": "district", "other": "ekb"}
EKB_VIEW = {"own": "ekb", "child": "ekb_district", "other": "city"}
ANON = "anonymous"
# login -> (role, sector, relation -> place)
USERS: dict[str, tuple[str, str | None, dict[str, str]]] = {
    ANON: ("citizen", None, VOLOGDA_VIEW),
    "t_federal": ("federal", None, VOLOGDA_VIEW),
    "t_region_vologda": ("regional", None, OBLAST_VIEW),
    "t_city_vologda": ("municipal", None, VOLOGDA_VIEW),
    "t_city_ekb": ("municipal", None, EKB_VIEW),
    "t_energy_vologda": ("agency", "energy", OBLAST_VIEW),
    "t_education_vologda": ("agency", "education", OBLAST_VIEW),
    "t_analyst_vologda": ("analyst", None, OBLAST_VIEW),
    "t_enterprise": ("enterprise", None, VOLOGDA_VIEW),
}
OPS = ("list", "one", "tile", "create", "replace", "patch", "delete", "history")


def relations(login: str) -> list[str]:
    rel = list(USERS[login][2])
    return rel if login == ANON else [*rel, "mine"]


def place_of(login: str, relation: str) -> str:
    view = USERS[login][2]
    return view["other"] if relation == "mine" else view[relation]


CELLS = [(login, cls, relation, op) for login in USERS for cls in CLASSES for relation in relations(login)
         for op in OPS if not (op == "create" and relation == "mine")]  # a new feature is nobody's yet


def cell_id(cell: tuple) -> str:
    return "-".join(cell)


# --- the world: a throwaway database with territories, users and features ---------------------------------------
# Places: territory OKTMO, and (for the ones the fixture makes or widens) the boundary it gets.
OBLAST_BOX = (36.0, 58.4, 46.5, 61.6)  # around Вологодская обл
EKB_BOX = (60.45, 56.75, 60.75, 56.95)  # around г Екатеринбург (its demo parcels lie at 60.555..60.565)
EKB_DISTRICT_BOX = (60.45, 56.75, 60.60, 56.95)  # its western part, with the parcels
VOLOGDA_DISTRICT_BOX = (39.70, 59.10, 39.86, 59.30)  # the western part of г Вологда
PLACE_OKTMO = {"oblast": "19000000", "city": "19701000", "district": "19701000901", "ekb": "65701000",
               "ekb_district": "65701000901"}
SIZE = 0.001  # degrees: features are this small, well inside their territory


def geometry(cls: str, lon: float, lat: float) -> dict:
    if cls == "public":
        return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + SIZE, lat], [lon + SIZE, lat + SIZE],
                                                    [lon, lat + SIZE], [lon, lat]]]}
    if cls == "internal":
        return {"type": "Point", "coordinates": [lon + SIZE / 2, lat + SIZE / 2]}
    return {"type": "LineString", "coordinates": [[lon, lat], [lon + SIZE, lat + SIZE]]}


def properties(cls: str, marker: str) -> dict:
    base = {"public": {"zone_type": "residential", "name": "matrix"},
            "internal": {"type_code": "school", "name": "matrix"},
            "restricted": {"kind": "heat", "unit": "Gcal/h"}}[cls]
    return {**base, "source": "access-matrix", "source_id": marker}


PATCHED = {"public": ("name", "patched"), "internal": ("name", "patched"), "restricted": ("unit", "MW")}


@dataclass
class World:
    engine: object
    client: object
    tokens: dict[str, str]
    territory: dict[str, int]  # place -> territory id
    anchor: dict[str, tuple[float, float]]  # place -> lon, lat of a point deep inside it
    shared: dict[tuple[str, str], int] = field(default_factory=dict)  # (cls, place) -> feature by t_federal
    mine: dict[tuple[str, str], int] = field(default_factory=dict)  # (login, cls) -> feature the user made

    def headers(self, login: str) -> dict[str, str]:
        return {} if login == ANON else bearer(self.tokens[login])

    def insert(self, cls: str, place: str, actor: str) -> int:
        """A feature of `cls` in `place`, written by `actor` in SQL (territory_id as the API would derive it)."""
        table = CLASSES[cls]
        lon, lat = self.anchor[place]
        props = properties(cls, uuid.uuid4().hex)
        cols = ", ".join(props)
        geom = "ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326)"
        if cls != "internal":
            geom = f"ST_Multi({geom})"
        with transaction(self.engine, actor) as conn:
            return conn.execute(text(f"INSERT INTO cdt.{table} ({cols}, geom, territory_id) VALUES "
                                     f"({', '.join(':' + c for c in props)}, {geom}, :tid) RETURNING id"),
                                {**props, "g": json.dumps(geometry(cls, lon, lat)),
                                 "tid": self.territory[place]}).scalar()

    def remove(self, cls: str, fid: int) -> None:
        table = CLASSES[cls]
        with self.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM cdt.{table} WHERE id = :id"), {"id": fid})
            conn.execute(text("DELETE FROM cdt.history WHERE collection = :c AND feature_id = :f"),
                         {"c": table, "f": str(fid)})

    def row(self, cls: str, fid: int):
        with self.engine.connect() as conn:
            return conn.execute(text(f"SELECT version, ST_AsText(geom) AS wkt, territory_id, created_by, "
                                     f"source_id FROM cdt.{CLASSES[cls]} WHERE id = :id"), {"id": fid}).first()


def _make_tokens(engine) -> dict[str, str]:
    """The users of conftest.TEST_USERS in this database, with a Bearer token each."""
    return make_test_users(engine, "matrix")


def _box(b: tuple[float, float, float, float]) -> str:
    return f"ST_MakeEnvelope({b[0]}, {b[1]}, {b[2]}, {b[3]}, 4326)"


def _territories(engine) -> tuple[dict[str, int], dict[str, tuple[float, float]]]:
    """Boundaries for the oblast and Ekaterinburg, a district under each city; ids and inner points of places."""
    with transaction(engine, "test:matrix") as conn:
        ids = dict(conn.execute(text("SELECT oktmo, id FROM cdt.territories")).all())
        conn.execute(text(f"UPDATE cdt.territories SET boundary = ST_Multi(ST_Union({_box(OBLAST_BOX)}, "
                          f"(SELECT boundary FROM cdt.territories WHERE oktmo = '19701000'))) "
                          f"WHERE oktmo = '19000000'"))
        conn.execute(text(f"UPDATE cdt.territories SET boundary = ST_Multi({_box(EKB_BOX)}) WHERE oktmo = '65701000'"))
        conn.execute(text(f"""
            INSERT INTO cdt.territories (oktmo, name, level, parent_id, boundary) VALUES
            ('19701000901', 'г Вологда, тестовый район', 'city_district', :city,
             ST_Multi(ST_CollectionExtract(ST_Intersection(
                 (SELECT boundary FROM cdt.territories WHERE id = :city), {_box(VOLOGDA_DISTRICT_BOX)}), 3))),
            ('65701000901', 'г Екатеринбург, тестовый район', 'city_district', :ekb,
             ST_Multi({_box(EKB_DISTRICT_BOX)}))"""), {"city": ids["19701000"], "ekb": ids["65701000"]})
        ids = dict(conn.execute(text("SELECT oktmo, id FROM cdt.territories")).all())
        territory = {place: ids[oktmo] for place, oktmo in PLACE_OKTMO.items()}
        # A point deep inside each place and outside its smaller places (so the smallest territory holding a
        # feature, which the API derives, is the place itself).
        region = {"oblast": "ST_Difference(o.boundary, c.boundary)", "city": "ST_Difference(c.boundary, d.boundary)",
                  "district": "d.boundary", "ekb": "ST_Difference(e.boundary, ed.boundary)",
                  "ekb_district": "ed.boundary"}
        anchor = {}
        for place, sql in region.items():
            row = conn.execute(text(
                f"SELECT ST_X(m.center) AS x, ST_Y(m.center) AS y, m.radius FROM cdt.territories o, "
                f"cdt.territories c, cdt.territories d, cdt.territories e, cdt.territories ed, "
                f"ST_MaximumInscribedCircle({sql}) m WHERE o.id = :o AND c.id = :c AND d.id = :d AND e.id = :e "
                f"AND ed.id = :ed"), {"o": territory["oblast"], "c": territory["city"], "d": territory["district"],
                                      "e": territory["ekb"], "ed": territory["ekb_district"]}).one()
            assert row.radius > 5 * SIZE, f"{place} is too narrow for the test features"
            anchor[place] = (round(row.x, 6), round(row.y, 6))
    return territory, anchor


@pytest.fixture(scope="module")
def world(make_database):
    from layers.ingest.demo import load_demo

    url = make_database()
    engine = engine_for(url)
    load_demo(engine, DATA, actor="test:demo", echo=lambda _m: None)
    territory, anchor = _territories(engine)
    app = create_app(Config.from_env(), database_url=url)
    w = World(engine, app.test_client(), _make_tokens(engine), territory, anchor)
    # The features the read cells look at: one per class and place by t_federal, through the API (which derives
    # territory_id from the geometry), and one per user and class made by the user themself (in SQL: most roles
    # may not create them), in the user's "other" territory.
    for cls, table in CLASSES.items():
        for place, (lon, lat) in anchor.items():
            resp = w.client.post(f"/collections/{table}/items", headers=w.headers("t_federal"), content_type=GEOJSON,
                                 data=json.dumps({"type": "Feature", "geometry": geometry(cls, lon, lat),
                                                  "properties": properties(cls, uuid.uuid4().hex)}))
            assert resp.status_code == 201, resp.get_data(as_text=True)
            fid = resp.get_json()["id"]
            assert w.row(cls, fid).territory_id == territory[place], f"{table} {fid} in {place}: wrong territory"
            w.shared[(cls, place)] = fid
        for login in USERS:
            if login != ANON:
                w.mine[(login, cls)] = w.insert(cls, place_of(login, "mine"), f"user:{login}")
    yield w
    engine.dispose()


@pytest.fixture
def made(world):
    """Features a cell makes (class, id); removed, with their history, when the cell ends."""
    out: list[tuple[str, int]] = []
    yield out
    for cls, fid in out:
        world.remove(cls, fid)


# --- checking one cell ---------------------------------------------------------------------------------------
def assert_denied_status(login: str, status: int, allowed_statuses: tuple[int, ...], what: str) -> None:
    if login == ANON:
        assert status == 401, f"{what}: anonymous must get 401, got {status}"
    else:
        assert status in allowed_statuses, f"{what}: denied with {status}, expected one of {allowed_statuses}"


def tile_ids(world: World, login: str, table: str, lon: float, lat: float, z: int) -> tuple[int, set[int]]:
    t = WMQ.tile(lon, lat, z)
    resp = world.client.get(f"/collections/{table}/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}",
                            headers=world.headers(login))
    if resp.status_code == 204:
        return 204, set()
    if resp.status_code != 200:
        return resp.status_code, set()
    assert resp.mimetype == "application/vnd.mapbox-vector-tile"
    decoded = mapbox_vector_tile.decode(resp.data)
    assert set(decoded) <= {table}, f"a tile of {table} carries other layers: {set(decoded)}"
    return 200, {f["id"] for f in decoded.get(table, {}).get("features", [])}


def check_read(world: World, login: str, cls: str, op: str, fid: int, place: str, allowed: bool) -> None:
    table = CLASSES[cls]
    h = world.headers(login)
    what = f"{login} {op} {table}/{fid}"
    if op == "list":
        resp = world.client.get(f"/collections/{table}/items", headers=h, query_string={"limit": 10000})
        if resp.status_code == 200:
            body = resp.get_json()
            got = {f["id"] for f in body["features"]}
            # numberMatched counts only what the caller may see (nothing hidden leaks through the count)
            assert body.get("numberMatched", len(got)) == body["numberReturned"] == len(got), what
            assert (fid in got) == allowed, f"{what}: {'missing from' if allowed else 'leaks into'} the list"
        else:
            assert not allowed, f"{what}: {resp.status_code} {resp.get_data(as_text=True)[:300]}"
            assert_denied_status(login, resp.status_code, (403,), what)
    elif op == "tile":
        lon, lat = world.anchor[place]
        lon, lat = lon + SIZE / 2, lat + SIZE / 2
        for z in ZOOMS:
            status, ids = tile_ids(world, login, table, lon, lat, z)
            if allowed:
                assert status == 200 and fid in ids, f"{what}: feature missing from the z{z} tile ({status})"
            elif status in (200, 204):
                assert fid not in ids, f"{what}: feature leaks into the z{z} tile"
            else:
                assert_denied_status(login, status, (403,), f"{what} z{z}")
    else:
        suffix = "/history" if op == "history" else ""
        resp = world.client.get(f"/collections/{table}/items/{fid}{suffix}", headers=h)
        if allowed:
            assert resp.status_code == 200, f"{what}: {resp.status_code} {resp.get_data(as_text=True)[:300]}"
            body = resp.get_json()
            if op == "history":
                assert body["versions"] and body["versions"][0]["operation"] == "insert"
            else:
                assert body["id"] == fid
        else:
            assert_denied_status(login, resp.status_code, (403, 404), what)
            # The same answer as for a feature that does not exist: nothing tells that this one does.
            missing = world.client.get(f"/collections/{table}/items/{MISSING_ID}{suffix}", headers=h)
            assert resp.status_code == missing.status_code, \
                f"{what}: {resp.status_code} for a hidden feature but {missing.status_code} for a missing one"


def check_write(world: World, made: list, login: str, cls: str, op: str, relation: str, allowed: bool) -> None:
    table = CLASSES[cls]
    h = world.headers(login)
    place = place_of(login, relation)
    lon, lat = world.anchor[place]
    what = f"{login} {op} {table} in {place} ({relation})"
    if op == "create":
        marker = uuid.uuid4().hex
        resp = world.client.post(f"/collections/{table}/items", headers=h, content_type=GEOJSON,
                                 data=json.dumps({"type": "Feature", "geometry": geometry(cls, lon, lat),
                                                  "properties": properties(cls, marker)}))
        with world.engine.connect() as conn:
            written = conn.execute(text(f"SELECT id, territory_id FROM cdt.{table} WHERE source_id = :m"),
                                   {"m": marker}).all()
        made.extend((cls, r.id) for r in written)
        if allowed:
            assert resp.status_code == 201, f"{what}: {resp.status_code} {resp.get_data(as_text=True)[:300]}"
            assert [r.id for r in written] == [resp.get_json()["id"]]
            assert written[0].territory_id == world.territory[place]
        else:
            assert_denied_status(login, resp.status_code, (403,), what)
            assert not written, f"{what}: refused ({resp.status_code}) but written"
        return
    # replace, patch, delete: a fresh feature (by t_federal, or by the user for "mine")
    actor = f"user:{login}" if relation == "mine" else "user:t_federal"
    fid = world.insert(cls, place, actor)
    made.append((cls, fid))
    before = world.row(cls, fid)
    url = f"/collections/{table}/items/{fid}"
    key, value = PATCHED[cls]
    if op == "replace":
        props = {**properties(cls, before.source_id), key: value}
        resp = world.client.put(url, headers=h, content_type=GEOJSON,
                                data=json.dumps({"type": "Feature", "geometry": geometry(cls, lon, lat),
                                                 "properties": props}))
    elif op == "patch":
        resp = world.client.patch(url, headers=h, content_type=MERGE, data=json.dumps({"properties": {key: value}}))
    else:
        resp = world.client.delete(url, headers=h)
    after = world.row(cls, fid)
    if allowed:
        assert resp.status_code == (204 if op == "delete" else 200), \
            f"{what}: {resp.status_code} {resp.get_data(as_text=True)[:300]}"
        if op == "delete":
            assert after is None
        else:
            assert after.version == before.version + 1 and resp.get_json()["properties"][key] == value
    else:
        assert_denied_status(login, resp.status_code, (403, 404), what)
        assert after == before, f"{what}: refused ({resp.status_code}) but the feature changed"


@pytest.mark.parametrize("login, cls, relation, op", CELLS, ids=[cell_id(c) for c in CELLS])
def test_cell(world, made, login, cls, relation, op):
    role, sector, _ = USERS[login]
    allowed = expected(role, sector, cls, relation, op)
    if op in READS:
        fid = world.mine[(login, cls)] if relation == "mine" else world.shared[(cls, place_of(login, relation))]
        check_read(world, login, cls, op, fid, place_of(login, relation), allowed)
    else:
        check_write(world, made, login, cls, op, relation, allowed)


def test_matrix_size():
    """Every user x layer class x relation x operation is a cell (create has no "mine": nobody owns a new one)."""
    per_user = {login: len(relations(login)) * len(OPS) - (0 if login == ANON else 1) for login in USERS}
    assert len(CELLS) == len(set(CELLS)) == sum(per_user.values()) * len(CLASSES)
    allowed = sum(expected(USERS[c[0]][0], USERS[c[0]][1], c[1], c[2], c[3]) for c in CELLS)
    print(f"\naccess matrix: {len(CELLS)} cells ({len(USERS)} users x {len(CLASSES)} layer classes x relations x "
          f"{len(OPS)} operations), {allowed} allowed, {len(CELLS) - allowed} denied")
    # every role, relation and operation is in the matrix, and each operation has cells both ways
    assert {USERS[c[0]][0] for c in CELLS} == {"citizen", "federal", "regional", "municipal", "agency", "analyst",
                                               "enterprise"}
    assert {c[2] for c in CELLS} == {"own", "child", "grandchild", "other", "mine"}
    for op in OPS:
        outcomes = {expected(USERS[c[0]][0], USERS[c[0]][1], c[1], c[2], op) for c in CELLS if c[3] == op}
        assert outcomes == {True, False}, op


# --- beyond the cells --------------------------------------------------------------------------------------
def history_count(world: World, table: str, fid: int) -> int:
    with world.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM cdt.history WHERE collection = :c AND feature_id = :f"),
                            {"c": table, "f": str(fid)}).scalar()


MOVERS = [(login, cls) for login in ("t_city_vologda", "t_city_ekb", "t_region_vologda", "t_energy_vologda")
          for cls in CLASSES if expected(USERS[login][0], USERS[login][1], cls, "own", "replace")]


@pytest.mark.parametrize("login, cls", MOVERS, ids=[f"{login}-{cls}" for login, cls in MOVERS])
def test_moving_a_feature_out_of_the_territory_is_refused(world, made, login, cls):
    """A feature of the user's own territory moved into another municipality (PUT, or PATCH of the geometry, or a
    geometry reaching out of it): 403 and nothing written; moving it within the territory is allowed."""
    role, sector, view = USERS[login]
    table = CLASSES[cls]
    fid = world.insert(cls, view["own"], "user:t_federal")
    made.append((cls, fid))
    before, n_history = world.row(cls, fid), history_count(world, table, fid)
    url = f"/collections/{table}/items/{fid}"
    h = world.headers(login)
    lon, lat = world.anchor[view["own"]]
    far = world.anchor[view["other"]]  # inside another municipality
    away = geometry(cls, *far)
    # one part inside the territory, one in the other municipality
    straddling = {"public": {"type": "MultiPolygon", "coordinates": [geometry(cls, lon, lat)["coordinates"],
                                                                     away["coordinates"]]},
                  "internal": {"type": "MultiPoint", "coordinates": [[lon, lat], list(far)]},
                  "restricted": {"type": "LineString", "coordinates": [[lon, lat], list(far)]}}[cls]
    attempts = [
        world.client.put(url, headers=h, content_type=GEOJSON, data=json.dumps(
            {"type": "Feature", "geometry": away, "properties": properties(cls, before.source_id)})),
        world.client.patch(url, headers=h, content_type=MERGE, data=json.dumps({"geometry": away})),
        world.client.patch(url, headers=h, content_type=MERGE, data=json.dumps({"geometry": straddling})),
    ]
    for resp in attempts:
        assert resp.status_code == 403, resp.get_data(as_text=True)[:300]
    assert world.row(cls, fid) == before and history_count(world, table, fid) == n_history
    # a feature is not created there either
    marker = uuid.uuid4().hex
    resp = world.client.post(f"/collections/{table}/items", headers=h, content_type=GEOJSON,
                             data=json.dumps({"type": "Feature", "geometry": straddling,
                                              "properties": properties(cls, marker)}))
    assert resp.status_code == 403
    with world.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM cdt.{table} WHERE source_id = :m"), {"m": marker}).scalar() == 0
    # within the territory (into a child territory) it moves
    inside = geometry(cls, *world.anchor[view["child"]])
    moved = world.client.patch(url, headers=h, content_type=MERGE, data=json.dumps({"geometry": inside}))
    assert moved.status_code == 200, moved.get_data(as_text=True)[:300]
    assert world.row(cls, fid).territory_id == world.territory[view["child"]]


def test_an_enterprise_cannot_touch_another_enterprise_s_objects(world, made):
    """t_enterprise's planned facility: t_enterprise_other neither sees nor edits it; t_enterprise does both."""
    table, cls = "planned_facilities", "internal"
    lon, lat = world.anchor["city"]
    marker = uuid.uuid4().hex
    created = world.client.post(f"/collections/{table}/items", headers=world.headers("t_enterprise"),
                                content_type=GEOJSON, data=json.dumps(
                                    {"type": "Feature", "geometry": geometry(cls, lon, lat),
                                     "properties": properties(cls, marker)}))
    assert created.status_code == 201, created.get_data(as_text=True)
    fid = created.get_json()["id"]
    made.append((cls, fid))
    before = world.row(cls, fid)
    assert before.created_by == "user:t_enterprise"
    other = world.headers("t_enterprise_other")
    url = f"/collections/{table}/items/{fid}"
    assert world.client.get(url, headers=other).status_code == 404
    assert world.client.get(f"{url}/history", headers=other).status_code == 404
    listed = world.client.get(f"/collections/{table}/items", headers=other, query_string={"limit": 10000})
    assert listed.status_code == 200 and fid not in {f["id"] for f in listed.get_json()["features"]}
    for z in ZOOMS:
        status, ids = tile_ids(world, "t_enterprise_other", table, lon + SIZE / 2, lat + SIZE / 2, z)
        assert status in (200, 204) and fid not in ids
    refused = [
        world.client.put(url, headers=other, content_type=GEOJSON, data=json.dumps(
            {"type": "Feature", "geometry": geometry(cls, lon, lat), "properties": properties(cls, marker)})),
        world.client.patch(url, headers=other, content_type=MERGE, data=json.dumps({"properties": {"name": "x"}})),
        world.client.delete(url, headers=other),
        world.client.post(f"{url}/history/1/revert", headers=other),
    ]
    for resp in refused:
        assert resp.status_code in (403, 404), (resp.status_code, resp.get_data(as_text=True)[:300])
    assert world.row(cls, fid) == before
    # the owner edits it, anywhere
    mine = world.client.patch(url, headers=world.headers("t_enterprise"), content_type=MERGE,
                              data=json.dumps({"geometry": geometry(cls, *world.anchor["ekb"])}))
    assert mine.status_code == 200, mine.get_data(as_text=True)[:300]
    assert world.row(cls, fid).territory_id == world.territory["ekb"]


def test_a_refused_write_is_audited(world, made):
    """A refused edit leaves a 'denied' entry in cdt.audit_log: who, what, from where, why."""
    fid = world.insert("restricted", "ekb", "user:t_federal")
    made.append(("restricted", fid))
    url = f"/collections/utility_lines/items/{fid}"
    with world.engine.connect() as conn:
        last = conn.execute(text("SELECT coalesce(max(id), 0) FROM cdt.audit_log")).scalar()
    put = world.client.put(url, headers=world.headers("t_city_vologda"), content_type=GEOJSON,
                           environ_base={"REMOTE_ADDR": "203.0.113.7"},
                           data=json.dumps({"type": "Feature", "geometry": geometry("restricted", *world.anchor["ekb"]),
                                            "properties": properties("restricted", "x")}))
    assert put.status_code == 403
    anon = world.client.delete(url, environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert anon.status_code == 401
    with world.engine.connect() as conn:
        rows = conn.execute(text("SELECT actor, action, outcome, remote_addr, detail FROM cdt.audit_log "
                                 "WHERE id > :last ORDER BY id"), {"last": last}).all()
    entries = [(r.actor, r.action, r.outcome, r.remote_addr, r.detail["status"]) for r in rows]
    assert ("user:t_city_vologda", f"PUT {url}", "denied", "203.0.113.7", 403) in entries
    assert ("anonymous", f"DELETE {url}", "denied", "198.51.100.9", 401) in entries
    assert all(r.detail.get("reason") for r in rows if r.outcome == "denied")


# --- found by this matrix and fixed: revert of a deleted feature, tileset metadata ------------------------------
def test_reverting_another_enterprise_s_deleted_object_is_refused(world, made):
    table, cls = "planned_facilities", "internal"
    marker = uuid.uuid4().hex
    created = world.client.post(f"/collections/{table}/items", headers=world.headers("t_enterprise"),
                                content_type=GEOJSON, data=json.dumps(
                                    {"type": "Feature", "geometry": geometry(cls, *world.anchor["city"]),
                                     "properties": {**properties(cls, marker), "name": "confidential proposal"}}))
    assert created.status_code == 201
    fid = created.get_json()["id"]
    made.append((cls, fid))
    url = f"/collections/{table}/items/{fid}"
    assert world.client.delete(url, headers=world.headers("t_enterprise")).status_code == 204
    # t_enterprise_other may not read the object, its history, nor (hence) bring it back
    assert world.client.get(f"{url}/history", headers=world.headers("t_enterprise_other")).status_code == 404
    revert = world.client.post(f"{url}/history/1/revert", headers=world.headers("t_enterprise_other"))
    assert revert.status_code in (403, 404), revert.get_data(as_text=True)[:300]
    assert world.row(cls, fid) is None


NON_PUBLIC_TILESET_PATHS = [f"/collections/{table}/tiles{suffix}" for table in ("planned_facilities", "utility_lines")
                            for suffix in ("", "/WebMercatorQuad", "/WebMercatorQuad/tilejson.json")]


@pytest.mark.parametrize("path", NON_PUBLIC_TILESET_PATHS)
def test_tileset_metadata_of_non_public_collections_needs_sign_in(world, path):
    assert world.client.get(path).status_code == 401
