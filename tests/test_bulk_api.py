"""Bulk upserts for external systems over HTTP: layer records (JSON, CSV), indicator values, Rosstat uploads.

Runs against the run's demo database; every row a test writes carries a `test-bulk` source (or a test indicator)
and is deleted at the end of the module, with its history, so other modules see the demo as it was. Coordinates:
(39.88, 59.21) lies in г Вологда (the territory of t_city_vologda); (60.6, 56.8) is Ekaterinburg, outside it.
"""

from __future__ import annotations

import io
import json
import time

import pytest
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from tests.conftest import bearer, scalar
from tests.test_rosstat_import import POP, read_cities, wide_rows, write_csv

FZ = "/bulk/collections/functional_zones"
PF = "/bulk/collections/planned_facilities"
IV = "/bulk/indicator-values"
SRC = "test-bulk"
SERIES = "test_bulk_series"
COMPUTED = "test_bulk_computed"


@pytest.fixture(scope="module")
def app(db_url):
    return create_app(Config(), database_url=db_url)


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def as_user(app, token: str):
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = bearer(token)["Authorization"]
    return c


@pytest.fixture(scope="module")
def city(app, tokens):
    """t_city_vologda: a municipal planner of Vologda (edits functional zones and planned facilities there)."""
    return as_user(app, tokens["t_city_vologda"])


@pytest.fixture(scope="module")
def federal(app, tokens):
    return as_user(app, tokens["t_federal"])


@pytest.fixture(scope="module", autouse=True)
def cleanup(engine):
    """Test indicators before, and at the end every row of this module (features, their history, values)."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO cdt.indicators (code, name_ru, name_en, unit, kind, formula, provenance) "
                          "VALUES (:s, 'Тест', 'Test', 'people', 'series', NULL, 'test'), "
                          "(:c, 'Тест', 'Test computed', 'people', 'expr', '1', 'test') ON CONFLICT DO NOTHING"),
                     {"s": SERIES, "c": COMPUTED})
        before = set(conn.execute(text("SELECT code FROM cdt.indicators")).scalars())
    yield
    with engine.begin() as conn:
        for table in ("functional_zones", "planned_facilities"):
            conn.execute(text(f"DELETE FROM cdt.history WHERE collection = :t AND feature_id IN "
                              f"(SELECT id::text FROM cdt.{table} WHERE source LIKE '{SRC}%')"), {"t": table})
            conn.execute(text(f"DELETE FROM cdt.{table} WHERE source LIKE '{SRC}%'"))
            conn.execute(text("DELETE FROM cdt.history WHERE collection = :t AND operation = 'DELETE' "
                              "AND before->>'source' LIKE :s"), {"t": table, "s": f"{SRC}%"})
        conn.execute(text("DELETE FROM cdt.indicator_values WHERE source LIKE 'bulk:%' OR indicator_code IN "
                          "(:s, :c)"), {"s": SERIES, "c": COMPUTED})
        conn.execute(text("DELETE FROM cdt.indicators WHERE code IN (:s, :c) OR (NOT (code = ANY(:before)) "
                          "AND provenance LIKE 'Росстат, БД ПМО: %')"),
                     {"s": SERIES, "c": COMPUTED, "before": list(before)})


def square(x: float, y: float, size: float = 0.002) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]}


def zone(source_id: str, x: float = 39.88, y: float = 59.21, **props) -> dict:
    return {"type": "Feature", "geometry": square(x, y),
            "properties": {"source": SRC, "source_id": source_id, "zone_type": "residential", **props}}


def collection(*features: dict) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def post(client, path: str, body: str | bytes, content_type: str = "application/geo+json", **query):
    return client.post(path, data=body, content_type=content_type, query_string=query)


def report(resp, status: int = 200) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)[:2000]
    return resp.get_json()


def statuses(rep: dict) -> list[str]:
    return [r["status"] for r in rep["records"]]


# --- layer records -------------------------------------------------------------------------------------------
def test_json_insert_then_unchanged_then_updated_with_history(city, engine):
    body = collection(zone("z1", name="A"), zone("z2", 39.885, name="B"), zone("z3", 39.89, max_floors=5))
    first = report(post(city, FZ, body))
    assert statuses(first) == ["inserted"] * 3 and first["written"] and first["counts"]["inserted"] == 3
    assert [r["index"] for r in first["records"]] == [0, 1, 2]
    assert first["records"][0]["key"] == {"source": SRC, "source_id": "z1"}
    ids = [r["id"] for r in first["records"]]
    rows = {r.id: r for r in engine.connect().execute(text(
        "SELECT id, name, max_floors, version, created_by, territory_id FROM cdt.functional_zones "
        "WHERE id = ANY(:ids)"), {"ids": ids})}
    assert rows[ids[0]].name == "A" and rows[ids[2]].max_floors == 5
    assert {r.created_by for r in rows.values()} == {"user:t_city_vologda"}
    assert scalar(engine, "SELECT oktmo FROM cdt.territories WHERE id = :t", t=rows[ids[0]].territory_id) \
        == "19701000"

    again = report(post(city, FZ, body))
    assert statuses(again) == ["unchanged"] * 3 and [r["id"] for r in again["records"]] == ids

    changed = collection(zone("z1", name="A2"), zone("z2", 39.885, name="B"), zone("z3", 39.89, max_floors=5))
    third = report(post(city, FZ, changed))
    assert statuses(third) == ["updated", "unchanged", "unchanged"]
    assert scalar(engine, "SELECT name FROM cdt.functional_zones WHERE id = :i", i=ids[0]) == "A2"
    hist = engine.connect().execute(text(
        "SELECT version, operation, actor, after->>'name' AS name FROM cdt.history WHERE collection = "
        "'functional_zones' AND feature_id = :f ORDER BY id"), {"f": str(ids[0])}).all()
    assert [(h.version, h.operation, h.actor, h.name) for h in hist] == [
        (1, "INSERT", "user:t_city_vologda", "A"), (2, "UPDATE", "user:t_city_vologda", "A2")]


def test_records_with_wkt_and_update_by_id(city, engine):
    rep = report(post(city, FZ, json.dumps({"records": [
        {"source": SRC, "source_id": "w1", "zone_type": "public",
         "geometry": "POLYGON((39.87 59.2, 39.872 59.2, 39.872 59.202, 39.87 59.2))"}]}), "application/json"))
    fid = rep["records"][0]["id"]
    assert statuses(rep) == ["inserted"]
    # By id, only what is given changes (merge semantics); the geometry is kept.
    rep = report(post(city, FZ, json.dumps({"records": [{"id": fid, "properties": {"name": "by id"}}]}),
                      "application/json"))
    assert statuses(rep) == ["updated"] and rep["records"][0]["key"] == {"id": fid}
    row = engine.connect().execute(text("SELECT name, zone_type, ST_NPoints(geom) AS n FROM cdt.functional_zones "
                                        "WHERE id = :i"), {"i": fid}).one()
    assert tuple(row) == ("by id", "public", 4)


def test_csv_points_with_source_parameter(city, engine):
    csv_text = ("source_id,type_code,name,capacity,planned_year,lon,lat\n"
                "p1,school,Школа 1,550,2027,39.881,59.212\n"
                "p2,kindergarten,\"Сад, 2\",220,2028,39.884,59.213\n")
    rep = report(post(city, PF, csv_text, "text/csv", source=f"{SRC}-csv"))
    assert statuses(rep) == ["inserted", "inserted"] and [r["line"] for r in rep["records"]] == [2, 3]
    got = engine.connect().execute(text(
        "SELECT source_id, type_code, name, capacity, planned_year, ST_X(geom) AS x, ST_Y(geom) AS y "
        "FROM cdt.planned_facilities WHERE source = :s ORDER BY source_id"), {"s": f"{SRC}-csv"}).all()
    assert [tuple(r) for r in got] == [("p1", "school", "Школа 1", 550.0, 2027, 39.881, 59.212),
                                       ("p2", "kindergarten", "Сад, 2", 220.0, 2028, 39.884, 59.213)]
    assert statuses(report(post(city, PF, csv_text, "text/csv", source=f"{SRC}-csv"))) == ["unchanged"] * 2
    # Semicolons, WKT, another CRS (EPSG:4326 is lat, lon): the same points, so unchanged.
    wkt = ("source;source_id;type_code;name;capacity;planned_year;geometry_wkt\n"
           f"{SRC}-csv;p1;school;Школа 1;550;2027;POINT(59.212 39.881)\n")
    rep = report(post(city, PF, wkt, "text/csv", crs="EPSG:4326"))
    assert statuses(rep) == ["unchanged"]


def test_all_or_nothing_writes_nothing(city, engine, unchanged):
    bowtie = {"type": "Polygon", "coordinates": [[[39.88, 59.2], [39.882, 59.202], [39.882, 59.2], [39.88, 59.202],
                                                  [39.88, 59.2]]]}
    bad = {"type": "Feature", "geometry": bowtie, "properties": {"source": SRC, "source_id": "bad",
                                                                "zone_type": "residential"}}
    rep = report(post(city, FZ, collection(zone("aon1"), bad)), 422)
    assert rep["written"] is False and rep["counts"]["invalid"] == 1
    assert statuses(rep) == ["inserted", "invalid"] and "id" not in rep["records"][0]
    assert rep["records"][1]["messages"][0].startswith("invalid geometry: Self-intersection")


def test_valid_only_writes_the_valid_and_reports_the_rest(city, engine):
    records = [zone("v1"), zone("v2", max_floors=-1), zone("v3", colour="red"), zone("v4", 60.6, 56.8),
               {"type": "Feature", "geometry": {"type": "Point", "coordinates": [39.88, 59.21]},
                "properties": {"source": SRC, "source_id": "v5", "zone_type": "residential"}},
               {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": "nonsense"},
                "properties": {"source": SRC, "source_id": "v6", "zone_type": "residential"}},
               {"type": "Feature", "geometry": square(39.88, 59.21), "properties": {"source_id": "v7"}},
               zone("v1", name="again")]
    rep = report(post(city, FZ, collection(*records), mode="valid_only"))
    assert statuses(rep) == ["inserted"] + ["invalid"] * 7 and rep["written"]
    msgs = [" ".join(r["messages"]) for r in rep["records"]]
    assert "max_floors' must be at least 0" in msgs[1]
    assert "unknown property 'colour'" in msgs[2]
    assert "outside your territory" in msgs[3]
    assert "MULTIPOLYGON geometries, not Point" in msgs[4]
    assert "geometry cannot be read" in msgs[5]
    assert "source and source_id are required" in msgs[6] and "zone_type' is required" in msgs[6]
    assert "the same feature as record" in msgs[7]
    assert scalar(engine, "SELECT count(*) FROM cdt.functional_zones WHERE source = :s AND source_id LIKE 'v%'",
                  s=SRC) == 1


def test_updating_a_feature_outside_the_territory_is_invalid(city, federal, engine):
    rep = report(post(federal, FZ, collection(zone("ekb", 60.6, 56.8))))
    assert statuses(rep) == ["inserted"]
    rep = report(post(city, FZ, collection(zone("ekb", 60.6, 56.8, name="mine now")), mode="valid_only"))
    assert statuses(rep) == ["invalid"] and "outside your territory" in rep["records"][0]["messages"][0]


def test_who_may_not(client, app, tokens, engine, unchanged):
    assert report(post(client, FZ, collection(zone("anon"))), 401)["code"] == "Unauthorized"
    analyst = as_user(app, tokens["t_analyst_vologda"])
    assert report(post(analyst, FZ, collection(zone("anl"))), 403)["code"] == "Forbidden"
    assert report(post(as_user(app, tokens["t_federal"]), "/bulk/collections/buildings", "{}"), 405)
    assert report(post(client, IV, "{}", "application/json"), 401)["code"] == "Unauthorized"
    enterprise = as_user(app, tokens["t_enterprise"])
    assert report(post(enterprise, IV, json.dumps({"values": []}), "application/json"), 403)["code"] == "Forbidden"


def test_bad_requests(city, unchanged):
    assert report(post(city, FZ, "[1]"), 400)["code"] == "InvalidParameterValue"
    assert report(post(city, FZ, "x", "text/plain"), 415)
    assert report(post(city, FZ, collection(), mode="some"), 400)
    too_many = json.dumps({"records": [{}] * 50_001})
    assert report(post(city, FZ, too_many, "application/json"), 413)["code"] == "PayloadTooLarge"
    assert report(post(city, FZ, b" " * (11 * 1024 * 1024)), 413)


def test_five_thousand_records(federal, engine):
    features = [zone(f"bulk5k-{i}", 39.80 + (i % 100) * 0.0011, 59.15 + (i // 100) * 0.0011, name=f"Z{i}")
                for i in range(5000)]
    for f in features:
        f["geometry"] = square(*f["geometry"]["coordinates"][0][0], size=0.001)
    body = collection(*features)
    started = time.perf_counter()
    rep = report(post(federal, FZ, body))
    inserted = time.perf_counter() - started
    assert rep["counts"]["inserted"] == 5000
    started = time.perf_counter()
    rep = report(post(federal, FZ, body))
    again = time.perf_counter() - started
    assert rep["counts"]["unchanged"] == 5000
    print(f"\n5,000 polygons: insert {inserted:.2f} s, unchanged re-send {again:.2f} s")


# --- indicator values ------------------------------------------------------------------------------------------
def values_of(engine, code: str) -> dict:
    rows = engine.connect().execute(text(
        "SELECT t.oktmo, extract(year FROM v.period)::int AS y, v.value_type, v.value, v.source "
        "FROM cdt.indicator_values v JOIN cdt.territories t ON t.id = v.territory_id WHERE v.indicator_code = :c"),
        {"c": code}).all()
    return {(r.oktmo, r.y, r.value_type): (r.value, r.source) for r in rows}


def test_indicator_values_json_and_csv(city, engine):
    values = [{"indicator": SERIES, "territory": "19701000", "year": 2023, "value": 1.5},
              {"indicator": SERIES, "territory": "19701000", "year": 2024, "value_type": "forecast", "value": 2},
              {"indicator": COMPUTED, "territory": "19701000", "year": 2030, "value_type": "target", "value": 3.25}]
    rep = report(post(city, IV, json.dumps({"values": values}), "application/json"))
    assert statuses(rep) == ["inserted"] * 3
    src = "bulk:user:t_city_vologda"
    assert values_of(engine, SERIES) == {("19701000", 2023, "actual"): (1.5, src),
                                         ("19701000", 2024, "forecast"): (2.0, src)}
    assert values_of(engine, COMPUTED) == {("19701000", 2030, "target"): (3.25, src)}
    assert statuses(report(post(city, IV, json.dumps({"values": values}), "application/json"))) == ["unchanged"] * 3
    csv_text = ("indicator;territory;year;value_type;value\n"
                f"{SERIES};19701000;2023;actual;1,75\n{SERIES};19701000;2025;target;4\n")
    rep = report(post(city, IV, csv_text, "text/csv"))
    assert statuses(rep) == ["updated", "inserted"] and [r["line"] for r in rep["records"]] == [2, 3]
    assert values_of(engine, SERIES)[("19701000", 2023, "actual")] == (1.75, src)
    assert values_of(engine, SERIES)[("19701000", 2025, "target")] == (4.0, src)


def test_bad_indicator_values_are_reported(city, engine, unchanged):
    values = [{"indicator": SERIES, "territory": "19701000", "year": 2020, "value": 1},
              {"indicator": "no_such", "territory": "19701000", "year": 2020, "value": 1},
              {"indicator": SERIES, "territory": "00000000", "year": 2020, "value": 1},
              {"indicator": SERIES, "territory": "19701000", "year": 1500, "value": 1},
              {"indicator": SERIES, "territory": "19701000", "year": 2020, "value_type": "guess", "value": 1},
              {"indicator": SERIES, "territory": "19701000", "year": 2021, "value": "1e999"},
              {"indicator": SERIES, "territory": "65701000", "year": 2020, "value": 1},
              {"indicator": COMPUTED, "territory": "19701000", "year": 2020, "value_type": "actual", "value": 1}]
    rep = report(post(city, IV, json.dumps({"values": values}), "application/json"), 422)
    assert statuses(rep) == ["inserted"] + ["invalid"] * 7 and rep["written"] is False
    msgs = [" ".join(r["messages"]) for r in rep["records"]]
    for n, expected in enumerate(["unknown indicator", "unknown territory", "year must be", "value_type must be",
                                  "value must be a number", "outside your territory", "come from the engine"], 1):
        assert expected in msgs[n], (n, msgs[n])
    csv_text = f"indicator,territory,year,value\n{SERIES},19701000,2020,nan\n{SERIES},19701000,20x0,1\n"
    rep = report(post(city, IV, csv_text, "text/csv"), 422)
    assert "value must be finite" in rep["records"][0]["messages"][0]
    assert "year must be a number" in rep["records"][1]["messages"][0]


def test_rosstat_upload(city, engine, tmp_path):
    vologda = next(c for c in read_cities() if c["oktmo"].startswith("19701000") and not c["area"].strip())
    cities = [{"oktmo": "19701000", "name": f"{vologda['city_type']} {vologda['city']}",
               "population": int(vologda["population"])}]
    path = write_csv(tmp_path / "bdmo_bulk.csv", wide_rows(cities))
    resp = city.post(f"{IV}/rosstat", data={"file": (io.BytesIO(path.read_bytes()), "bdmo_bulk.csv")},
                     content_type="multipart/form-data")
    rep = report(resp)
    assert rep["written"] and rep["values_inserted"] == 2 and rep["source"] == "rosstat-bdmo:bdmo_bulk.csv"
    code = rep["indicator_codes"][POP]
    assert values_of(engine, code) == {("19701000", 2021, "actual"): (float(cities[0]["population"]),
                                                                      "rosstat-bdmo:bdmo_bulk.csv")}
    again = report(city.post(f"{IV}/rosstat", data={"file": (io.BytesIO(path.read_bytes()), "bdmo_bulk.csv")},
                             content_type="multipart/form-data"))
    assert again["values_unchanged"] == 2 and again["values_inserted"] == 0


def test_document_and_openapi(client):
    doc = report(client.get("/bulk"))
    urls = [e["url"] for e in doc["endpoints"]]
    assert any(u.endswith("/bulk/collections/{collectionId}") for u in urls)
    assert any(u.endswith("/exports/dictionary") for u in urls)
    assert doc["limits"]["max_records_per_request"] == 50_000 and "Bearer" in doc["authentication"]["scheme"]
    paths = report(client.get("/api", query_string={"f": "json"}))["paths"]
    assert {"/bulk", "/bulk/collections/{collectionId}", "/bulk/indicator-values",
            "/bulk/indicator-values/rosstat"} <= set(paths)
