"""The planning API on the Vologda demo: the indicator registry, values, maps and series with trends, user-defined
indicators, programs and goal trees, scenarios (a planned school, compare, goal seek) with the base data untouched,
territorial analytics, investment appraisal and budget equalization, and bad input refused with 4xx."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers.db import transaction
from planning.indicators import catalog, service
from tests.conftest import bearer

VOLOGDA, OBLAST, YEAR = "19701000", "19000000", 2026


KEY = "indicator_code, territory_id, period, value_type, scenario_id"


@contextmanager
def indicator_values_restored(engine):
    """Indicator values as they were before the block: what it wrote (computed, inserted) goes, what it
    replaced comes back, so modules that read the latest stored year are unaffected."""
    with engine.connect() as conn:
        t0 = conn.execute(text("SELECT clock_timestamp()")).scalar()
        before = conn.execute(text(f"SELECT {KEY}, value, source FROM cdt.indicator_values")).all()
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM cdt.indicator_values WHERE computed_at >= :t"), {"t": t0})
            if before:
                cols = list(zip(*before, strict=True))
                conn.execute(text(f"""
                    INSERT INTO cdt.indicator_values ({KEY}, value, source)
                    SELECT * FROM unnest(CAST(:c AS text[]), CAST(:t AS int[]), CAST(:p AS date[]),
                                         CAST(:vt AS text[]), CAST(:s AS int[]), CAST(:v AS float8[]),
                                         CAST(:src AS text[])) AS x(c, t, p, vt, s, v, src)
                    WHERE NOT EXISTS (SELECT 1 FROM cdt.indicator_values i WHERE i.indicator_code = x.c
                        AND i.territory_id = x.t AND i.period = x.p AND i.value_type = x.vt
                        AND i.scenario_id IS NOT DISTINCT FROM x.s)
                      AND EXISTS (SELECT 1 FROM cdt.indicators d WHERE d.code = x.c)"""),
                             dict(zip(("c", "t", "p", "vt", "s", "v", "src"), map(list, cols), strict=True)))


@pytest.fixture(scope="module")
def client(db_url, engine):
    with indicator_values_restored(engine):
        with transaction(engine, "test") as c:
            catalog.install(c, "test")
        service.run(engine, VOLOGDA, YEAR, "test")
        yield create_app(Config(), database_url=db_url).test_client()
        _clean_up(engine)


def _clean_up(engine):
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM cdt.scenarios WHERE name LIKE 'Test scenario%'"))
        conn.execute(text("DELETE FROM cdt.programs WHERE code LIKE 'test-prog%'"))
        conn.execute(text("DELETE FROM cdt.goals WHERE title LIKE 'Test goal%'"))
        conn.execute(text("DELETE FROM cdt.indicator_values WHERE indicator_code IN "
                          "(SELECT code FROM cdt.indicators WHERE NOT builtin AND code LIKE 'test\\_%')"))
        conn.execute(text("DELETE FROM cdt.indicators WHERE NOT builtin AND code LIKE 'test\\_%'"))
        conn.execute(text("DELETE FROM cdt.indicator_values WHERE source = 'test-series'"))


def scalar(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def tid(engine, oktmo):
    return scalar(engine, "SELECT id FROM cdt.territories WHERE oktmo = :o", o=oktmo)


def test_registry_listing_and_filters(client):
    body = client.get("/indicators").get_json()
    assert body["total"] >= len(body["indicators"]) > 50
    assert "capacity" in body["families"]
    fam = client.get("/indicators?family=capacity&limit=5&offset=2").get_json()
    assert len(fam["indicators"]) == 5 and fam["total"] > 5
    assert all(d["family"] == "capacity" for d in fam["indicators"])
    found = client.get("/indicators?q=kindergarten_capacity_per").get_json()["indicators"]
    assert [d["code"] for d in found] == ["fac_kindergarten_capacity_per_1000"]
    assert all(d["kind"] == "expr" for d in client.get("/indicators?kind=expr").get_json()["indicators"])
    one = client.get("/indicators/fac_kindergarten_capacity_per_1000").get_json()
    assert set(one["depends_on"]) == {"fac_kindergarten_capacity", "residents"}
    assert one["computation_order"][-1] == "fac_kindergarten_capacity_per_1000"
    assert client.get("/indicators/no_such_thing").status_code == 404
    assert client.get("/indicators?limit=zero").status_code == 400
    assert client.get("/indicators?bogus=1").status_code == 400


def test_values_and_map_for_vologda(client, engine):
    code = "fac_kindergarten_capacity_per_1000"
    body = client.get(f"/indicators/{code}/values?territory={VOLOGDA}").get_json()
    assert body["year"] == YEAR
    value = {v["oktmo"]: v["value"] for v in body["values"]}[VOLOGDA]
    assert value == pytest.approx(1000 * 28270 / 356810, abs=1e-6)
    resp = client.get(f"/indicators/{code}/map?year={YEAR}")
    assert resp.status_code == 200 and resp.mimetype == "application/geo+json"
    fc = resp.get_json()
    city = [f for f in fc["features"] if f["properties"]["oktmo"] == VOLOGDA]
    assert len(city) == 1 and city[0]["geometry"]["type"] in ("MultiPolygon", "Polygon")
    assert city[0]["properties"]["value"] == pytest.approx(value)
    assert client.get(f"/indicators/{code}/values?year=20x6").status_code == 400
    assert client.get(f"/indicators/{code}/values?territory=00000000").status_code == 404
    assert client.get("/indicators/nope/map").status_code == 404


def test_series_and_trends(client, engine):
    code, t = "fac_school_capacity_per_1000", tid(engine, VOLOGDA)
    with engine.begin() as conn:
        for i, year in enumerate(range(2018, 2025)):
            conn.execute(text(
                "INSERT INTO cdt.indicator_values (indicator_code, territory_id, period, value_type, value, source) "
                "VALUES (:c, :t, make_date(:y, 1, 1), 'actual', :v, 'test-series') ON CONFLICT DO NOTHING"),
                {"c": code, "t": t, "y": year, "v": 100 + 5 * i + (20 if year >= 2022 else 0)})
        conn.execute(text(
            "INSERT INTO cdt.indicator_values (indicator_code, territory_id, period, value_type, value, source) "
            "VALUES (:c, :t, '2030-01-01', 'target', 200, 'test-series') ON CONFLICT DO NOTHING"), {"c": code, "t": t})
    body = client.get(f"/indicators/{code}/series?territory={VOLOGDA}").get_json()
    assert body["series"]["actual"]["2018"] == 100 and body["series"]["target"]["2030"] == 200
    tr = body["trends"]
    assert tr["points"] >= 8 and tr["linear"]["slope"] > 0 and tr["cagr"] is not None
    assert tr["yoy_growth"]["2019"] == pytest.approx(0.05)
    assert tr["structural_break"] is not None and "period" in tr["structural_break"]
    assert client.get(f"/indicators/{code}/series").status_code == 400


def test_user_defined_indicator(client, engine, tokens):
    city = bearer(tokens["t_city_vologda"])
    new = {"code": "test_kg_per_school", "name_ru": "Тест", "name_en": "Test", "unit": "ratio",
           "formula": "fac_kindergarten_capacity / fac_school_capacity", "direction": "higher"}
    assert client.post("/indicators", json=new).status_code == 401
    assert client.post("/indicators", json=new, headers=bearer(tokens["t_enterprise"])).status_code == 403
    resp = client.post("/indicators", json=new, headers=city)
    assert resp.status_code == 201, resp.get_json()
    assert client.post("/indicators", json=new, headers=city).status_code == 409
    cycle = client.post("/indicators", json={**new, "code": "test_cycle", "formula": "test_cycle + 1"},
                        headers=city)
    assert cycle.status_code == 400 and "cycle" in cycle.get_json()["description"]
    unknown = client.post("/indicators", json={**new, "code": "test_unknown", "formula": "no_such_indicator * 2"},
                          headers=city)
    assert unknown.status_code == 400 and "no_such_indicator" in unknown.get_json()["description"]
    bad = client.post("/indicators", json={**new, "code": "test_bad", "formula": "residents +"}, headers=city)
    assert bad.status_code == 400
    measure = client.post("/indicators", json={**new, "code": "test_measure", "kind": "measure",
                                                "source_layer": "facilities", "formula": "count(*)"}, headers=city)
    assert measure.status_code == 403
    computed = client.post("/indicators/compute", json={"territory": VOLOGDA, "year": YEAR,
                                                        "codes": ["test_kg_per_school"]}, headers=city)
    assert computed.status_code == 200 and computed.get_json()["values"] > 0
    values = client.get(f"/indicators/test_kg_per_school/values?year={YEAR}&territory={VOLOGDA}").get_json()
    kg = scalar(engine, "SELECT value FROM cdt.indicator_values WHERE indicator_code = 'fac_kindergarten_capacity' "
                "AND territory_id = :t AND period = '2026-01-01' AND scenario_id IS NULL AND value_type = 'actual'",
                t=tid(engine, VOLOGDA))
    school = scalar(engine, "SELECT value FROM cdt.indicator_values WHERE indicator_code = 'fac_school_capacity' "
                    "AND territory_id = :t AND period = '2026-01-01' AND scenario_id IS NULL "
                    "AND value_type = 'actual'", t=tid(engine, VOLOGDA))
    assert values["values"][0]["value"] == pytest.approx(kg / school)
    assert client.delete("/indicators/residents", headers=city).status_code == 400
    assert client.delete("/indicators/test_kg_per_school").status_code == 401
    assert client.delete("/indicators/test_kg_per_school", headers=city).status_code == 204
    assert client.get("/indicators/test_kg_per_school").status_code == 404
    assert client.post("/indicators", data="{not json", headers={**city, "Content-Type": "application/json"}
                       ).status_code == 400


def test_program_goal_split_and_tree(client, engine, tokens):
    region = bearer(tokens["t_region_vologda"])
    service.run(engine, OBLAST, YEAR, "test")
    resp = client.post("/programs", json={"code": "test-prog", "name": "Test program", "territory": OBLAST,
                                          "start_year": YEAR, "end_year": 2030}, headers=region)
    assert resp.status_code == 201, resp.get_json()
    pid = resp.get_json()["id"]
    assert any(p["id"] == pid for p in client.get("/programs").get_json()["programs"])
    goal = client.post("/goals", json={"title": "Test goal: kindergartens", "territory": OBLAST, "program_id": pid,
                                       "indicator": "fac_kindergarten_capacity_per_1000", "target_value": 90,
                                       "target_year": 2030, "baseline_year": YEAR}, headers=region)
    assert goal.status_code == 201, goal.get_json()
    gid = goal.get_json()["id"]
    split = client.post(f"/goals/{gid}/split", headers=region)
    assert split.status_code == 200, split.get_json()
    assert len(split.get_json()["subgoals"]) >= 1
    tree = client.get(f"/programs/{pid}/goals").get_json()["goals"]
    assert len(tree) == 1 and tree[0]["id"] == gid
    children = tree[0]["children"]
    assert VOLOGDA in {c["oktmo"] for c in children}
    assert "achievement_pct" in tree[0]["status"] and "critical" in tree[0]["status"]
    assert client.post("/goals", json={"title": "Test goal x", "territory": OBLAST, "indicator": "nope",
                                       "target_value": 1, "target_year": 2030, "baseline_year": YEAR},
                       headers=region).status_code == 404
    assert client.post("/goals", json={"title": "Test goal y"}, headers=region).status_code == 400
    assert client.get("/programs/999999/goals").status_code == 404
    assert client.post("/programs", json={"code": "test-anon", "name": "x"}).status_code == 401


def _count(engine):
    return (scalar(engine, "SELECT count(*) FROM cdt.facilities"),
            scalar(engine, "SELECT count(*) FROM cdt.planned_facilities"))


def test_scenario_planned_school_compare_and_goal_seek(client, engine, tokens):
    city = bearer(tokens["t_city_vologda"])
    before = _count(engine)
    schema = client.get("/collections/planned_facilities/schema", headers=city)
    assert schema.status_code == 200 and "type_code" in schema.get_json()["properties"]
    resp = client.post("/scenarios", json={"name": "Test scenario: a new school", "territory": VOLOGDA,
                                           "parameters": {"include_planned": 1}}, headers=city)
    assert resp.status_code == 201, resp.get_json()
    sid = resp.get_json()["id"]
    assert any(s["id"] == sid for s in client.get("/scenarios").get_json()["scenarios"])
    x, y = (scalar(engine, "SELECT ST_X(ST_PointOnSurface(boundary)) FROM cdt.territories WHERE oktmo = :o",
                   o=VOLOGDA),
            scalar(engine, "SELECT ST_Y(ST_PointOnSurface(boundary)) FROM cdt.territories WHERE oktmo = :o",
                   o=VOLOGDA))
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
               "properties": {"type_code": "school", "name": "Test school", "capacity": 1100,
                              "territory_id": tid(engine, VOLOGDA)}}
    assert client.post(f"/scenarios/{sid}/edits", json={"collection": "planned_facilities", "operation": "insert",
                                                        "feature": feature}).status_code == 401
    assert client.post(f"/scenarios/{sid}/edits", json={"collection": "planned_facilities", "operation": "insert",
                                                        "feature": feature},
                       headers=bearer(tokens["t_region_vologda"])).status_code == 403
    edit = client.post(f"/scenarios/{sid}/edits", json={"collection": "planned_facilities", "operation": "insert",
                                                        "feature": feature}, headers=city)
    assert edit.status_code == 201, edit.get_json()
    one = client.get(f"/scenarios/{sid}", headers=city).get_json()
    assert one["edits"] == 1 and len(one["edit_list"]) == 1
    assert client.get(f"/scenarios/{sid}").get_json()["edit_list"] == []  # anonymous may not read the layer
    acc = ["acc_mean_walk_school"]
    codes = ",".join(["fac_school_count", *acc])
    cmp_ = client.get(f"/scenarios/{sid}/compare?codes={codes}&year={YEAR}&territory={VOLOGDA}")
    assert cmp_.status_code == 200, cmp_.get_json()
    rows = {r["code"]: r for r in cmp_.get_json()["rows"]}
    assert rows["fac_school_count"]["difference"] == 1
    assert rows["acc_mean_walk_school"]["difference"] < 0 and rows["acc_mean_walk_school"]["better"] is True
    diff_map = client.get(f"/indicators/fac_school_count/map?scenario={sid}&year={YEAR}").get_json()
    city_f = [f for f in diff_map["features"] if f["properties"]["oktmo"] == VOLOGDA][0]
    assert city_f["properties"]["difference"] == 1
    assert _count(engine) == before
    # goal seek on one lever: the kindergarten capacity per 1000 raised by half is reachable, tenfold is not
    code = "fac_kindergarten_capacity_per_1000"
    now = 1000 * 28270 / 356810
    solved = client.post(f"/scenarios/{sid}/goal-seek", json={
        "indicator": code, "target": 1.5 * now, "levers": {"capacity_factor:kindergarten": [1, 2]}, "year": YEAR})
    assert solved.status_code == 200, solved.get_json()
    body = solved.get_json()
    assert body["met"] and body["levers"]["capacity_factor:kindergarten"] == pytest.approx(1.5, rel=1e-3)
    unreachable = client.post(f"/scenarios/{sid}/goal-seek", json={
        "indicator": code, "target": 10 * now, "levers": {"capacity_factor:kindergarten": [1, 2]}, "year": YEAR})
    assert unreachable.status_code == 200 and not unreachable.get_json()["met"]
    assert client.post(f"/scenarios/{sid}/goal-seek", json={
        "indicator": code, "target": 1, "levers": {"no_such_lever": [1, 2]}}).status_code == 400
    levers = client.get("/scenarios/levers").get_json()
    assert "include_planned" in {lv["name"] for lv in levers["levers"]}
    put = client.put(f"/scenarios/{sid}/parameters", json={"population_factor": 1.1}, headers=city)
    assert put.status_code == 200 and put.get_json()["parameters"] == {"population_factor": 1.1}
    assert client.put(f"/scenarios/{sid}/parameters", json={"population_factor": 9},
                      headers=city).status_code == 400
    assert client.get("/scenarios/999999").status_code == 404
    assert client.get(f"/scenarios/{sid}/compare?codes=nope").status_code == 404
    assert _count(engine) == before


def test_analytics(client, engine):
    codes = ["fac_kindergarten_capacity_per_1000", "fac_school_capacity_per_1000", "residents"]
    with engine.connect() as conn:
        leaves = conn.execute(text(
            "SELECT t.oktmo FROM cdt.indicator_values v JOIN cdt.territories t ON t.id = v.territory_id "
            "WHERE v.indicator_code = 'residents' AND v.period = '2026-01-01' AND v.scenario_id IS NULL "
            "AND v.value_type = 'actual' AND v.value > 0 ORDER BY t.oktmo")).scalars().all()
    body = {"indicators": codes, "year": YEAR, "territories": leaves}
    if len(leaves) >= 4:
        clusters = client.post("/analytics/clusters", json={**body, "k": 2})
        assert clusters.status_code == 200, clusters.get_json()
        assert clusters.get_json()["k"] == 2
    else:  # too few territories for k-means: refused with a reason
        assert client.post("/analytics/clusters", json={**body, "k": 2}).status_code == 400
    sus = client.post("/analytics/sustainability", json={**body, "indicators": codes[:2], "weights": [2, 1]})
    assert sus.status_code == 200, sus.get_json()
    assert {t["rank"] for t in sus.get_json()["territories"]} >= {1}
    eq = client.post("/analytics/equity", json={"indicator": "fac_school_capacity_per_1000", "year": YEAR,
                                                "territories": leaves})
    assert eq.status_code == 200, eq.get_json()
    assert 0 <= eq.get_json()["gini"] <= 1
    assert client.post("/analytics/clusters", json={"indicators": ["nope"]}).status_code == 404
    assert client.post("/analytics/sustainability", json={"indicators": "x"}).status_code == 400


def test_investment_and_budget(client):
    r = client.post("/investment/appraisal", json={"rate": 0.1, "flows": [-100, 60, 60]}).get_json()
    assert r["npv"] == pytest.approx(4.1322, abs=1e-3)
    assert r["irr"] == pytest.approx(0.1307, abs=1e-4)
    assert r["profitability_index"] == pytest.approx(1.0413, abs=1e-3)
    assert 1 < r["discounted_payback"] <= 2
    mc = client.post("/investment/appraisal", json={"rate": 0.1, "monte_carlo": {
        "years": 2, "capex": 100, "revenue": {"triangular": [40, 60, 80]}, "n": 2000, "seed": 1}}).get_json()
    assert 0 < mc["monte_carlo"]["p_npv_negative"] < 1 and mc["monte_carlo"]["p5"] < mc["monte_carlo"]["p95"]
    assert client.post("/investment/appraisal", json={"rate": 0.1, "flows": ["a"]}).status_code == 400
    assert client.post("/investment/appraisal", json={"rate": 0.1}).status_code == 400
    assert client.post("/investment/appraisal", json={"rate": 0.1, "monte_carlo": {
        "years": 2, "capex": {"triangular": [3, 1]}, "revenue": 1}}).status_code == 400
    eq = client.post("/budget/equalization", json={"population": [100, 200], "tax_capacity_index": [0.5, 1.5],
                                                   "expenditure_index": [1, 1], "target_level": 1}).get_json()
    assert eq["total"] == pytest.approx(50) and eq["municipalities"][1]["transfer"] == 0
    assert client.post("/budget/equalization", json={"population": [1], "tax_capacity_index": [1],
                                                     "expenditure_index": [1]}).status_code == 400
    assert client.post("/budget/equalization", data="[1]", content_type="application/json").status_code == 400
    assert client.post("/budget/equalization", data="x=1",
                       content_type="application/x-www-form-urlencoded").status_code == 415


def test_openapi_lists_the_planning_paths(client):
    doc = client.get("/api?f=json").get_json()
    for path in ("/indicators", "/indicators/{code}/map", "/scenarios/{scenarioId}/goal-seek", "/analytics/equity"):
        assert path in doc["paths"]


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("post", "/indicators", {"code": 5, "formula": "residents"}, 400),
    ("post", "/indicators", {"name_en": "no code", "formula": "residents"}, 400),
    ("post", "/indicators", {"code": "test_x", "formula": "residents", "kind": ["expr"]}, 400),
    ("post", "/indicators", {"code": "test_x", "formula": "residents", "colour": "red"}, 400),
    ("post", "/indicators/compute", {"territory": "00000000", "year": 2026}, 404),
    ("post", "/indicators/compute", {"territory": VOLOGDA, "year": "2026"}, 400),
    ("post", "/indicators/compute", {"territory": VOLOGDA, "year": 1066}, 400),
    ("post", "/scenarios", {"name": "", "territory": VOLOGDA}, 400),
    ("post", "/scenarios", {"name": "Test scenario bad", "territory": VOLOGDA, "parameters": {"x": 1}}, 400),
    ("put", "/scenarios/abc/parameters", {}, 404),
    ("post", "/scenarios/999999/edits", {"collection": "planned_facilities", "operation": "insert"}, 404),
    ("post", "/goals/999999/split", None, 404),
    ("post", "/goals", {"title": "Test goal z", "territory": VOLOGDA, "indicator": "residents", "target_value": 1,
                        "target_year": 2020, "baseline_year": 2026}, 400),
])
def test_bad_writes_are_refused(client, tokens, method, path, body, status):
    resp = getattr(client, method)(path, json=body, headers=bearer(tokens["t_city_vologda"]))
    assert resp.status_code == status, resp.get_json()
    assert resp.get_json()["code"]


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("get", "/indicators/residents/values?scenario=abc", None, 404),
    ("get", "/indicators/residents/values?scenario=999999", None, 404),
    ("get", "/indicators/residents/series?territory=1", None, 404),
    ("get", "/indicators/residents/map?year=1", None, 400),
    ("get", "/scenarios/1x/compare", None, 404),
    ("post", "/analytics/equity", {"indicator": "nope"}, 404),
    ("post", "/analytics/equity", {"indicator": "residents", "weighted": "yes"}, 400),
    ("post", "/analytics/clusters", {"indicators": ["residents"], "year": 1850}, 400),
    ("post", "/analytics/clusters", {"indicators": ["residents"], "territories": ["00000000"]}, 404),
    ("post", "/analytics/sustainability", {"indicators": ["fac_school_capacity_per_1000"], "weights": "x"}, 400),
    ("post", "/investment/appraisal", {"rate": "x", "flows": [1]}, 400),
    ("post", "/investment/appraisal", {"rate": 0.1, "flows": []}, 400),
    ("post", "/investment/appraisal", {"rate": 0.1, "monte_carlo": {"years": 0, "capex": 1, "revenue": 1}}, 400),
    ("post", "/investment/appraisal", {"rate": 0.1, "monte_carlo": [1]}, 400),
    ("post", "/budget/equalization", {"population": {"a": 1}, "tax_capacity_index": {"b": 1},
                                      "expenditure_index": {"a": 1}, "fund": 1}, 400),
    ("post", "/budget/equalization", {"population": [1, 2], "tax_capacity_index": [1],
                                      "expenditure_index": [1, 1], "fund": 1}, 400),
])
def test_bad_reads_and_computations_are_refused(client, method, path, body, status):
    resp = client.get(path) if method == "get" else client.post(path, json=body)
    assert resp.status_code == status, resp.get_json()
    assert resp.get_json()["code"]
