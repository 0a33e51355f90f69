"""SQL injection: a corpus of hostile strings sent through every input of the OGC API that reaches SQL.

Each payload goes through `filter` (CQL2 text and JSON, GET and POST), `sortby`, `properties`, equality query
parameters (as value and as name), feature ids and collection ids in the path, `bbox`, `bbox-crs`, `crs`,
`filter-crs`, `filter-lang`, `datetime`, `limit`/`offset`, tile coordinates, the If-Match / Content-Crs /
Authorization headers, and the edit routes (as t_federal), and through a restricted collection as agency
staff (whose read rule adds its own SQL). Every answer must be a 4xx with an OGC exception, or a 200 that is a
bound string match: then it returns exactly the features PostGIS gives for that literal value. Never a 5xx,
never slow (pg_sleep never runs), and afterwards every CDT table is as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from tests.conftest import bearer, scalar, table_fingerprints

B = "/collections/buildings/items"
FZ = "/collections/functional_zones/items"
UN = "/collections/utility_nodes/items"
GEOJSON = "application/geo+json"
MERGE = "application/merge-patch+json"
CQL_JSON = "application/query-cql-json"
SLOW = 2.0  # seconds: every payload with pg_sleep asks for 3
PAGE = 1000

PAYLOADS = [
    # tautologies
    "' OR '1'='1", "' OR 1=1 --", "' OR ''='", "1 OR 1=1", "1' OR '1'='1' --", "admin'--", "') OR ('1'='1",
    "1) OR (1=1", "x' OR 'x'='x", "' OR 'a'='a' /*", '" OR ""="', "' OR TRUE --", "vologda/buildings' OR '1'='1",
    "vologda/buildings' --",
    # stacked queries
    "1; DROP TABLE cdt.buildings", "1; DROP TABLE cdt.buildings; --", "'; DROP TABLE cdt.buildings; --",
    "'); DELETE FROM cdt.buildings; --", "1; UPDATE cdt.buildings SET floors = 0", "'; TRUNCATE cdt.history; --",
    "1; INSERT INTO cdt.users (login) VALUES ('pwned')", "'; CREATE TABLE cdt.pwned (x int); --",
    "'; ALTER TABLE cdt.buildings DROP COLUMN floors; --", "1; COPY cdt.buildings TO '/tmp/cdt_pwned'",
    "'; GRANT ALL ON ALL TABLES IN SCHEMA cdt TO PUBLIC; --", "'; COMMIT; DROP TABLE cdt.buildings; --",
    # quoted identifiers
    '"floors\\"; DROP', '"floors"; DROP TABLE cdt.buildings; --', 'floors"; DROP TABLE cdt.buildings; --',
    '""; DROP TABLE cdt.buildings; --"', 'floors" OR "1"="1', 'floors" = 1 OR "floors',
    # UNION
    "' UNION SELECT login, NULL FROM cdt.users --", "1 UNION SELECT token_hash FROM cdt.api_tokens",
    "' UNION ALL SELECT NULL, NULL, NULL --", "1) UNION SELECT version() --",
    "' UNION SELECT pg_read_file('/etc/passwd') --",
    # comments
    "floors/**/=/**/1", "floors -- comment", "floors /* */ OR 1=1", "1/*", "*/; DROP TABLE cdt.buildings; /*",
    "--", "/*", "#", "floors#",
    # time-based
    "1 AND pg_sleep(3) IS NULL", "'; SELECT pg_sleep(3); --", "' OR pg_sleep(3) IS NOT NULL --",
    "(SELECT pg_sleep(3))", "pg_sleep(3)", "pg_sleep(3) = 0", "1; SELECT pg_sleep(3)", "' || pg_sleep(3) || '",
    "1 AND (SELECT 1 FROM pg_sleep(3)) = 1", "floors = 1 AND pg_sleep(3) IS NULL",
    "generate_series(1, 100000000) > 0",
    # dollar quoting, casts, escapes
    "$$; DROP TABLE cdt.buildings; $$", "$x$ OR 1=1 $x$", "$$", "E'\\x27 OR 1=1",
    "1::text; DROP TABLE cdt.buildings", "\\'; DROP TABLE cdt.buildings; --", "\\", "\\\\'", "U&'\\0027' OR 1=1",
    # NUL and control characters
    "\x00", "' OR 1=1\x00", "floors\x00; DROP TABLE cdt.buildings", "\x00'; DROP TABLE cdt.buildings; --",
    "\r\n; DROP TABLE cdt.buildings", "\t' OR 1=1", "\x1b[2J'",
    # unicode look-alikes
    "＇ OR ＇1＇=＇1", "’ OR ’1’=’1", "ʼ OR ʼ1ʼ=ʼ1", "‘; DROP TABLE cdt.buildings; --",
    "floors；DROP TABLE cdt.buildings", "Ｆｌｏｏｒｓ", "floors\u200b", "\ufeff' OR 1=1",
    "🏠'; DROP TABLE cdt.buildings; --", "\u0000\u2028'",
    # very long
    "'" * 10000, "' OR 1=1 " * 2000, "A" * 100000, "(" * 3000 + "1" + ")" * 3000, "%" * 5000, "_" * 5000,
    # encodings, lists, names of things
    "%27%20OR%201%3D1", "&filter=1=1", "floors,id; DROP TABLE cdt.buildings", "id,--,floors", "current_user",
    "version()", "cdt.buildings", "buildings; DROP TABLE cdt.buildings", "../../etc/passwd",
]


# --- requests and their oracles ------------------------------------------------------------------------
@dataclass
class Req:
    method: str
    path: str
    query: dict = field(default_factory=dict)
    body: object = None  # str/bytes as is, anything else as JSON
    content_type: str | None = None
    headers: dict = field(default_factory=dict)
    who: str | None = None  # a TEST_USERS login, or anonymous
    # For an answer of 200: (SQL WHERE over `t` of `table`, its parameters); None: a 200 is wrong.
    oracle: tuple[str, str, dict] | None = None
    statuses: tuple[int, ...] | None = None  # the 4xx expected, when one is certain


def _cql_text_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _cql_text_property(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _eq_json(prop: str, value) -> str:
    return json.dumps({"op": "=", "args": [{"property": prop}, value]})


def _path(value: str) -> str:
    return quote(value, safe="")


VOLOGDA_SCOPE = ("t.territory_id IN (WITH RECURSIVE tree AS (SELECT id FROM cdt.territories WHERE oktmo = "
                 "'19000000' UNION ALL SELECT c.id FROM cdt.territories c JOIN tree ON c.parent_id = tree.id) "
                 "SELECT id FROM tree)")


def _header_safe(p: str) -> bool:
    return not any(c in p for c in "\x00\r\n") and len(p) < 8000


# Each channel: name -> payload -> Req (None where the payload cannot travel that way, e.g. a NUL in a header).
CHANNELS: dict[str, Callable[[str, dict], Req | None]] = {
    # filter: the payload as the whole expression, as a property name, and inside a string literal
    "filter-text": lambda p, z: Req("GET", B, {"filter": p}, statuses=(400,)),
    "filter-text-property": lambda p, z: Req("GET", B, {"filter": f"{_cql_text_property(p)} = 1"}, statuses=(400,)),
    "filter-text-literal": lambda p, z: Req("GET", B, {"filter": f"source = {_cql_text_string(p)}", "limit": PAGE},
                                            oracle=("buildings", "t.source = :v", {"v": p})),
    "filter-text-like": lambda p, z: Req("GET", B, {"filter": f"source LIKE {_cql_text_string(p)}", "limit": PAGE},
                                         oracle=("buildings", "t.source LIKE :v", {"v": p})),
    "filter-text-and": lambda p, z: Req("GET", B, {"filter": f"floors > 5 AND {p}"}, statuses=(400,)),
    "filter-json": lambda p, z: Req("GET", B, {"filter": p, "filter-lang": "cql2-json"}, statuses=(400,)),
    "filter-json-property": lambda p, z: Req("GET", B, {"filter": _eq_json(p, 1), "filter-lang": "cql2-json"},
                                             statuses=(400,)),
    "filter-json-op": lambda p, z: Req("GET", B, {"filter": json.dumps({"op": p, "args": [{"property": "floors"}, 1]}),
                                                  "filter-lang": "cql2-json"}, statuses=(400,)),
    "filter-json-literal": lambda p, z: Req("GET", B, {"filter": _eq_json("source", p), "filter-lang": "cql2-json",
                                                       "limit": PAGE},
                                            oracle=("buildings", "t.source = :v", {"v": p})),
    "filter-json-like": lambda p, z: Req("GET", B, {"filter": json.dumps({"op": "like", "args": [
        {"property": "source"}, p]}), "filter-lang": "cql2-json", "limit": PAGE},
        oracle=("buildings", "t.source LIKE :v", {"v": p})),
    "post-cql-json-literal": lambda p, z: Req("POST", B, {"limit": PAGE}, _eq_json("source", p), CQL_JSON,
                                              oracle=("buildings", "t.source = :v", {"v": p})),
    "post-cql-json-property": lambda p, z: Req("POST", B, {}, _eq_json(p, 1), CQL_JSON, statuses=(400,)),
    "post-cql-json-raw": lambda p, z: Req("POST", B, {}, p, CQL_JSON, statuses=(400,)),
    "filter-lang": lambda p, z: Req("GET", B, {"filter": "floors = 1", "filter-lang": p}, statuses=(400,)),
    "filter-crs": lambda p, z: Req("GET", B, {"filter": "S_INTERSECTS(geometry, POINT(39.9 59.2))", "filter-crs": p},
                                   statuses=(400,)),
    # sorting and selecting
    "sortby": lambda p, z: Req("GET", B, {"sortby": p}, statuses=(400,)),
    "sortby-desc": lambda p, z: Req("GET", B, {"sortby": f"floors,-{p}"}, statuses=(400,)),
    "properties": lambda p, z: Req("GET", B, {"properties": p}, statuses=(400,)),
    "properties-list": lambda p, z: Req("GET", B, {"properties": f"floors,{p}"}, statuses=(400,)),
    "properties-one": lambda p, z: Req("GET", f"{B}/{z['building']}", {"properties": p}, statuses=(400,)),
    # equality query parameters: a text column (a bound match), typed columns, the payload as a name
    "equals-text": lambda p, z: Req("GET", B, {"source": p, "limit": PAGE},
                                    oracle=("buildings", "t.source = :v", {"v": p})),
    "equals-integer": lambda p, z: Req("GET", B, {"floors": p}, statuses=(400,)),
    "equals-boolean": lambda p, z: Req("GET", B, {"is_living": p}, statuses=(400,)),
    "equals-datetime": lambda p, z: Req("GET", B, {"updated_at": p}, statuses=(400,)),
    "parameter-name": lambda p, z: Req("GET", B, {p: "1"}, statuses=(400,)),
    # ids in the path
    "feature-id": lambda p, z: Req("GET", f"{B}/{_path(p)}", statuses=(404,)),
    "feature-history": lambda p, z: Req("GET", f"{FZ}/{_path(p)}/history", statuses=(404,)),
    "collection-items": lambda p, z: Req("GET", f"/collections/{_path(p)}/items", statuses=(404,)),
    "collection": lambda p, z: Req("GET", f"/collections/{_path(p)}", statuses=(404,)),
    "collection-queryables": lambda p, z: Req("GET", f"/collections/{_path(p)}/queryables", statuses=(404,)),
    "collection-tile": lambda p, z: Req("GET", f"/collections/{_path(p)}/tiles/WebMercatorQuad/14/4828/10007",
                                        statuses=(404,)),
    "tile-matrix": lambda p, z: Req("GET", f"/collections/buildings/tiles/WebMercatorQuad/{_path(p)}/0/0",
                                    statuses=(400, 404)),
    # geometry and paging parameters
    "bbox": lambda p, z: Req("GET", B, {"bbox": p}, statuses=(400,)),
    "bbox-corner": lambda p, z: Req("GET", B, {"bbox": f"39.8,59.1,40.0,{p}"}, statuses=(400,)),
    "bbox-crs": lambda p, z: Req("GET", B, {"bbox": "39.8,59.1,40.0,59.3", "bbox-crs": p}, statuses=(400,)),
    "crs": lambda p, z: Req("GET", B, {"crs": p}, statuses=(400,)),
    "crs-one": lambda p, z: Req("GET", f"{B}/{z['building']}", {"crs": p}, statuses=(400,)),
    "datetime": lambda p, z: Req("GET", B, {"datetime": p}, statuses=(400,)),
    "datetime-interval": lambda p, z: Req("GET", B, {"datetime": f"2020-01-01T00:00:00Z/{p}"}, statuses=(400,)),
    "limit": lambda p, z: Req("GET", B, {"limit": p}, statuses=(400,)),
    "offset": lambda p, z: Req("GET", B, {"offset": p}, statuses=(400,)),
    # a restricted collection read by agency staff: the read rule's SQL joins the filter's
    "restricted-filter-literal": lambda p, z: Req("GET", UN, {"filter": f"name = {_cql_text_string(p)}",
                                                              "limit": PAGE}, who="t_energy_vologda",
                                                  oracle=("utility_nodes", f"t.name = :v AND {VOLOGDA_SCOPE}",
                                                          {"v": p})),
    "restricted-equals": lambda p, z: Req("GET", UN, {"name": p, "limit": PAGE}, who="t_energy_vologda",
                                          oracle=("utility_nodes", f"t.name = :v AND {VOLOGDA_SCOPE}", {"v": p})),
    "restricted-filter": lambda p, z: Req("GET", UN, {"filter": p}, who="t_energy_vologda", statuses=(400,)),
    "restricted-sortby": lambda p, z: Req("GET", UN, {"sortby": p}, who="t_energy_vologda", statuses=(400,)),
    # headers
    "authorization": lambda p, z: Req("GET", B, headers={"Authorization": f"Bearer {p}"}, statuses=(401,))
    if _header_safe(p) else None,
    "if-match": lambda p, z: Req("PATCH", f"{FZ}/{z['zone']}", body={"properties": {"name": "injected"}},
                                 content_type=MERGE, headers={"If-Match": p}, who="t_federal", statuses=(412,))
    if _header_safe(p) and p.strip() != "*" else None,
    "content-crs": lambda p, z: Req("PATCH", f"{FZ}/{z['zone']}", body={"geometry": z["square"]}, content_type=MERGE,
                                    headers={"Content-Crs": f"<{p}>"}, who="t_federal", statuses=(400,))
    if _header_safe(p) else None,
    # edits, as a federal user who may edit functional_zones
    "edit-patch-id": lambda p, z: Req("PATCH", f"{FZ}/{_path(p)}", body={"properties": {"name": "injected"}},
                                      content_type=MERGE, who="t_federal", statuses=(404,)),
    "edit-put-id": lambda p, z: Req("PUT", f"{FZ}/{_path(p)}", body=z["feature"], content_type=GEOJSON,
                                    who="t_federal", statuses=(404,)),
    "edit-delete-id": lambda p, z: Req("DELETE", f"{FZ}/{_path(p)}", who="t_federal", statuses=(404,)),
    "edit-revert-version": lambda p, z: Req("POST", f"{FZ}/{z['zone']}/history/{_path(p)}/revert", who="t_federal",
                                            statuses=(404,)),
    "edit-property-name": lambda p, z: Req("PATCH", f"{FZ}/{z['zone']}", body={"properties": {p: 1}},
                                           content_type=MERGE, who="t_federal", statuses=(400,)),
    "edit-create-property-name": lambda p, z: Req("POST", FZ, body={**z["feature"], "properties": {
        **z["feature"]["properties"], p: "x"}}, content_type=GEOJSON, who="t_federal", statuses=(400,)),
}


# --- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(db_url):
    return create_app(Config(), database_url=db_url)


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def fingerprints(engine) -> dict[str, str]:
    """conftest.table_fingerprints, except a token's last_used_at (any use of a token marks it, at most once a
    minute); the audit log (refusals are recorded by design) and the tile cache are left out there already."""
    found = table_fingerprints(engine)
    found["api_tokens"] = scalar(engine, "SELECT count(*) || ':' || coalesce(md5(string_agg((to_jsonb(x) - "
                                         "'last_used_at')::text, '|' ORDER BY x.id)), '') FROM cdt.api_tokens x")
    return found


@pytest.fixture(scope="module")
def targets(client, engine, tokens):
    """Things the edit channels aim at: a functional zone made for the module (removed afterwards), a building."""
    square = {"type": "Polygon", "coordinates": [[[39.88, 59.21], [39.884, 59.21], [39.884, 59.214],
                                                  [39.88, 59.214], [39.88, 59.21]]]}
    feature = {"type": "Feature", "geometry": square, "properties": {"zone_type": "residential", "name": "target"}}
    resp = client.post(FZ, data=json.dumps(feature), content_type=GEOJSON, headers=bearer(tokens["t_federal"]))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    zone = resp.get_json()["id"]
    yield {"zone": zone, "square": square, "feature": feature,
           "building": scalar(engine, "SELECT min(id) FROM cdt.buildings")}
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM cdt.functional_zones WHERE id = :id"), {"id": zone})
        conn.execute(text("DELETE FROM cdt.history WHERE collection = 'functional_zones' AND feature_id = :f"),
                     {"f": str(zone)})


@pytest.fixture(scope="module")
def before(engine, targets):
    """The database before the corpus (the target zone included)."""
    return fingerprints(engine), scalar(engine, "SELECT count(*) FROM cdt.buildings")


def _expected(engine, oracle: tuple[str, str, dict]) -> tuple[int, list[int]]:
    table, where, params = oracle
    with engine.connect() as conn:
        count, ids = conn.execute(text(f"SELECT count(*), (array_agg(id ORDER BY id))[1:{PAGE}] FROM cdt.{table} t "
                                       f"WHERE {where}"), params).one()
    return count, list(ids or [])


def _send(client, tokens, req: Req):
    headers = dict(req.headers)
    if req.who:
        headers.update(bearer(tokens[req.who]))
    # A payload with a "/" in an id makes "//" in the path, which werkzeug redirects (308) to the merged path.
    kwargs: dict = {"query_string": req.query, "headers": headers, "follow_redirects": True}
    if req.body is not None:
        kwargs["data"] = req.body if isinstance(req.body, (str, bytes)) else json.dumps(req.body)
        kwargs["content_type"] = req.content_type
    return client.open(req.path, method=req.method, **kwargs)


def test_the_corpus_is_large_and_varied():
    assert len(PAYLOADS) >= 60 and len(set(PAYLOADS)) == len(PAYLOADS)
    for needle in ("' OR '1'='1", "DROP TABLE cdt.buildings", "UNION SELECT", "--", "/*", "pg_sleep", "$$", "\x00",
                   "＇", '"floors\\"; DROP'):
        assert any(needle in p for p in PAYLOADS), needle
    assert max(len(p) for p in PAYLOADS) >= 100000


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_channel_resists_the_corpus(client, engine, tokens, targets, before, channel):
    problems = []
    for payload in PAYLOADS:
        req = CHANNELS[channel](payload, targets)
        if req is None:
            continue
        started = time.monotonic()
        resp = _send(client, tokens, req)
        took = time.monotonic() - started
        label = f"{payload[:60]!r}{'...' if len(payload) > 60 else ''}"
        if took >= SLOW:
            problems.append(f"{label}: took {took:.1f} s")
        status = resp.status_code
        if status == 200 and req.oracle is not None:
            body = resp.get_json()
            count, ids = _expected(engine, req.oracle)
            got = [f["id"] for f in body["features"]]
            if body.get("numberMatched") != count or got != ids:
                problems.append(f"{label}: 200 with {body.get('numberMatched')} features {got[:5]}, but PostGIS "
                                f"has {count} for that literal {ids[:5]}")
        elif not 400 <= status < 500:
            problems.append(f"{label}: {status} {resp.get_data(as_text=True)[:200]}")
        elif req.statuses and status not in req.statuses:
            problems.append(f"{label}: {status}, expected {req.statuses}: {resp.get_data(as_text=True)[:200]}")
        elif resp.mimetype != "application/json" or not (resp.get_json() or {}).get("code"):
            problems.append(f"{label}: {status} without an OGC exception body ({resp.mimetype})")
    assert problems == [], f"{channel}: {len(problems)} bad answers:\n" + "\n".join(problems)


def test_literal_channels_do_match_real_values(client, engine):
    """The bound-match channels are live: the demo's one `source` value finds every building through them."""
    total = scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE source = 'vologda/buildings'")
    assert total == scalar(engine, "SELECT count(*) FROM cdt.buildings") > PAGE
    for query in ({"source": "vologda/buildings"}, {"filter": "source = 'vologda/buildings'"},
                  {"filter": _eq_json("source", "vologda/buildings"), "filter-lang": "cql2-json"},
                  {"filter": "source LIKE 'vologda/%'"}):
        body = client.get(B, query_string={**query, "limit": 1}).get_json()
        assert body["numberMatched"] == total, query


def test_database_unchanged_by_the_corpus(engine, before):
    fingerprint, buildings = before
    assert scalar(engine, "SELECT count(*) FROM cdt.buildings") == buildings
    after = fingerprints(engine)
    assert [t for t in fingerprint if fingerprint[t] != after.get(t)] == []
    assert set(after) == set(fingerprint), "a table appeared or disappeared"
