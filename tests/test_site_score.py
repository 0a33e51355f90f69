"""Investment appeal of a site: the scoring curves and the composite against hand-computed values
(planning.site_score), the service on the demo data with facts inserted in rolled-back transactions
(planning.site_service), and the `site-appeal` process over HTTP."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers.access import ANONYMOUS, Grant, Principal
from layers.errors import InvalidParameterValue, NotFound
from planning import site_score as ss
from planning.site_service import COVERAGE_M, site_appeal
from tests.conftest import bearer

FEDERAL = Principal("t_site_federal", None, (Grant("federal"),))
VOLOGDA = (39.8915, 59.2205)  # a street corner in the centre of Vologda
K = ss.Fact  # known fact


def unknown(reason: str = "no data") -> ss.Fact:
    return ss.Fact(None, reason)


# --- curves -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [(0, 100), (50, 100), (525, 50), (762.5, 25), (1000, 0), (5e4, 0)])
def test_ramp_down_street(value, expected):
    assert ss.ramp_down(value, *ss.STREET_M) == pytest.approx(expected)


@pytest.mark.parametrize(("curve", "half"), [(ss.DRIVE_CENTRE_MIN, 27.5), (ss.WALK_CENTRE_MIN, 52.5),
                                             (ss.RAILWAY_M, 2750), (ss.STOP_WALK_MIN, 12.5)])
def test_curves_at_their_ends_and_midpoint(curve, half):
    full, zero = curve
    assert ss.ramp_down(full, full, zero) == 100
    assert ss.ramp_down(half, full, zero) == pytest.approx(50)
    assert ss.ramp_down(zero, full, zero) == 0


def test_every_curve_is_monotone_and_bounded():
    xs = np.linspace(0, 10000, 2001)
    curves = [ss.STREET_M, ss.DRIVE_CENTRE_MIN, ss.WALK_CENTRE_MIN, ss.RAILWAY_M, ss.STOP_WALK_MIN,
              *ss.UTILITY_M.values()]
    for full, zero in curves:
        ys = [ss.ramp_down(x, full, zero) for x in xs]
        assert all(0 <= y <= 100 for y in ys) and all(b <= a for a, b in zip(ys, ys[1:], strict=False))
    with pytest.raises(ValueError):
        ss.ramp_down(1, 10, 10)


@pytest.mark.parametrize(("kind", "metres", "no_spare", "expected"), [
    ("power", 300, False, 100), ("power", 1650, False, 50), ("power", 1650, True, 25), ("gas", 1100, False, 50),
    ("heat", 850, False, 50), ("heat", 1500, False, 0), ("water", 200, True, 50), ("sewer", 2000, False, 0)])
def test_utility_curves(kind, metres, no_spare, expected):
    assert ss.utility_score(kind, metres, no_spare) == pytest.approx(expected)


@pytest.mark.parametrize(("code", "main", "conditional", "expected"), [
    ("П-1", None, None, 100), ("ПК-2", None, None, 100), ("Т-1", None, None, 60), ("О-2", None, None, 50),
    ("O-2", None, None, 50),  # a Latin O typed for the Cyrillic one
    ("И-1", None, None, 40), ("СХ-1", None, None, 30), ("Ж-1", None, None, 10), ("ж-1", None, None, 10),
    ("СН-1", None, None, 10), ("Р-1", None, None, 0), ("P-1", None, None, 0),  # Latin P looks like Р: recreation
    ("Ж-1", None, ["6.9"], 60), ("Ж-1", ["6.2", "2.1"], None, 100), ("Т-1", None, ["6.9"], 60),
    ("X-9", ["6"], None, 100), ("X-9", None, None, None)])
def test_zoning_score(code, main, conditional, expected):
    score, why = ss.zoning_score(code, main, conditional)
    assert score == expected and code in why


def test_functional_and_land_scores():
    assert ss.functional_score("industrial") == 100 and ss.functional_score(" Residential ") == 10
    assert ss.functional_score("water") == 0 and ss.functional_score("spaceport") is None
    expected = {"003003000000": 100, "003002000000": 80, "003007000000": 30, "003001000000": 20,
                "003005000000": 5, "003004000000": 0, "003006000000": 0}
    for code, score in expected.items():
        assert ss.land_score(code)[0] == score
    assert ss.land_score("003008000000")[0] is None and "not established" in ss.land_score("003008000000")[1]
    assert ss.land_score("999")[0] is None


def test_grades():
    assert [ss.grade(s) for s in (100, 75, 74.9, 50, 49.9, 25, 24.9, 0)] == [
        "high", "high", "medium", "medium", "low", "low", "poor", "poor"]


# --- components and composite -------------------------------------------------------------------------------
def _components(utilities: bool = True) -> list[ss.Component]:
    access = ss.accessibility(K(525.0), K(27.5), K(15.0), K(500.0), unknown("no stops"))
    util = ss.utilities({"heat": K(850.0), "power": K(300.0, detail={"no_spare": True}),
                         "gas": unknown()} if utilities else {k: unknown() for k in ss.UTILITY_M})
    zoning = ss.zoning(K("П-1"), K("residential"))
    land = ss.land(K("003001000000"))
    return [access, util, zoning, land]


def test_components_by_hand():
    access, util, zoning, land = _components()
    # (0.3*50 + 0.3*50 + 0.1*100 + 0.15*100) / 0.85: the stop's 0.15 is left out and the rest renormalised
    assert access.score == pytest.approx(55 / 0.85)
    assert "stop_walk_min: no stops" in access.why and access.raw == {
        "street_m": 525.0, "drive_centre_min": 27.5, "walk_centre_min": 15.0, "railway_m": 500.0}
    # heat 50, power 100 halved for no spare capacity, gas unknown: mean of 50 and 50
    assert util.score == pytest.approx(50) and "gas" in util.why
    assert zoning.score == pytest.approx(0.7 * 100 + 0.3 * 10)
    assert land.score == 20
    only_functional = ss.zoning(unknown("no ПЗЗ"), K("industrial"))
    assert only_functional.score == 100 and "no ПЗЗ" in only_functional.why
    assert not ss.zoning(unknown(), unknown()).known and not ss.land(unknown("no parcel")).known


def test_composite_with_all_components():
    result = ss.composite(_components())
    expected = 0.3 * 55 / 0.85 + 0.3 * 50 + 0.25 * 73 + 0.15 * 20
    assert result.score == pytest.approx(expected) and result.grade == "medium"
    assert result.weights == ss.DEFAULT_WEIGHTS and result.weights_used == ss.DEFAULT_WEIGHTS
    assert result.unknown == () and result.notes == ()
    out = result.to_json()
    assert out["score"] == round(expected, 1)
    land = next(c for c in out["components"] if c["key"] == "land")
    assert land["raw"] == {"land_category": "003001000000"} and land["contribution"] == 3.0


def test_unknown_component_renormalises_the_weights():
    result = ss.composite(_components(utilities=False))
    expected = (0.3 * 55 / 0.85 + 0.25 * 73 + 0.15 * 20) / 0.7
    assert result.score == pytest.approx(expected)
    assert result.unknown == ("utilities",)
    assert result.weights_used == {"accessibility": round(0.3 / 0.7, 4), "utilities": 0.0,
                                   "zoning": round(0.25 / 0.7, 4), "land": round(0.15 / 0.7, 4)}
    assert "utilities" in result.notes[0] and "renormalised" in result.notes[0]
    util = next(c for c in result.to_json()["components"] if c["key"] == "utilities")
    assert util["status"] == "unknown" and util["score"] is None and util["contribution"] is None


def test_weights_are_merged_normalised_and_echoed():
    result = ss.composite(_components(), {"accessibility": 2, "utilities": 1, "zoning": 1, "land": 0})
    assert result.weights == {"accessibility": 0.5, "utilities": 0.25, "zoning": 0.25, "land": 0.0}
    assert result.score == pytest.approx(0.5 * 55 / 0.85 + 0.25 * 50 + 0.25 * 73)
    partial = ss.composite(_components(), {"land": 0.55})  # the others keep their defaults: sum 1.4
    assert partial.weights["land"] == round(0.55 / 1.4, 4)


@pytest.mark.parametrize("weights", [{"land": -0.1}, {"accessibility": 0, "utilities": 0, "zoning": 0, "land": 0},
                                     {"beauty": 1}, {"land": "high"}, {"land": True}, {"land": math.nan},
                                     {"land": math.inf}, [0.3, 0.3]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(InvalidParameterValue):
        ss.check_weights(weights)
    with pytest.raises(InvalidParameterValue):
        ss.composite(_components(), weights)


def test_known_components_with_zero_weight_or_nothing_known_are_refused():
    only_land = [ss.accessibility(*[unknown()] * 5), ss.utilities({}), ss.zoning(unknown(), unknown()),
                 ss.land(K("003002000000"))]
    with pytest.raises(InvalidParameterValue, match="all have weight 0"):
        ss.composite(only_land, {"land": 0})
    nothing = [*only_land[:3], ss.land(unknown("no parcel"))]
    with pytest.raises(InvalidParameterValue, match="nothing is known"):
        ss.composite(nothing)


# --- the service on the demo data ---------------------------------------------------------------------------
def _component(result: dict, key: str) -> dict:
    return next(c for c in result["components"] if c["key"] == key)


@pytest.fixture(scope="module")
def ekb_parcel(engine) -> dict:
    with engine.connect() as conn:
        row = conn.execute(text("""
            SELECT p.id, p.cadastral_number, p.land_category_code FROM cdt.parcels p
            JOIN cdt.territories t ON t.id = p.territory_id
            WHERE t.oktmo = '65701000' AND p.land_category_code IS NOT NULL AND p.geom IS NOT NULL
            ORDER BY p.id LIMIT 1""")).mappings().one()
    return dict(row)


def test_ekaterinburg_parcel_scores_its_real_land_category(engine, ekb_parcel):
    result = site_appeal(engine, ANONYMOUS, cadastral_number=ekb_parcel["cadastral_number"])
    land = _component(result, "land")
    expected = ss.LAND_SCORES[ekb_parcel["land_category_code"]][0]
    assert land["status"] == "ok" and land["score"] == expected
    assert land["raw"] == {"land_category": ekb_parcel["land_category_code"]}
    # the demo has no streets, railways, utilities or zones in Ekaterinburg: unknown, not 0
    assert set(result["unknown"]) == {"accessibility", "utilities", "zoning"}
    assert result["score"] == pytest.approx(expected) and result["weights_used"]["land"] == 1.0
    assert result["site"]["kind"] == "parcel" and result["site"]["territory"]["oktmo"] == "65701000"
    assert result["site"]["centre"]["oktmo"] == "65701000"
    same = site_appeal(engine, ANONYMOUS, parcel_id=ekb_parcel["id"])
    assert same["score"] == result["score"] and same["site"]["parcel"]["id"] == ekb_parcel["id"]
    # a point clicked inside the parcel scores the parcel (Ekaterinburg has no boundary: the parcel places it)
    with engine.connect() as conn:
        lon, lat = conn.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p "
                                     "FROM cdt.parcels WHERE id = :id) s"), {"id": ekb_parcel["id"]}).one()
    clicked = site_appeal(engine, ANONYMOUS, lon=lon, lat=lat)
    assert clicked["site"]["kind"] == "parcel" and clicked["site"]["parcel"]["id"] == ekb_parcel["id"]
    assert clicked["score"] == result["score"]


def test_zones_covering_a_parcel_give_the_zoning_component(engine, ekb_parcel):
    with engine.connect() as conn, conn.begin() as tx:
        for table, columns, values in (("zoning_zones", "zone_code, main_uses", "'П-1', ARRAY['6.9']"),
                                       ("functional_zones", "zone_type", "'residential'")):
            conn.execute(text(f"""INSERT INTO cdt.{table} ({columns}, geom)
                SELECT {values}, ST_Multi(ST_Buffer(geom::geography, 50)::geometry) FROM cdt.parcels
                WHERE id = :pid"""), {"pid": ekb_parcel["id"]})
        result = site_appeal(engine, ANONYMOUS, parcel_id=ekb_parcel["id"], conn=conn)
        tx.rollback()
    zoning = _component(result, "zoning")
    assert zoning["status"] == "ok" and zoning["score"] == pytest.approx(0.7 * 100 + 0.3 * 10)
    assert zoning["raw"] == {"zoning": "П-1", "functional": "residential"}
    assert zoning["factors"][0]["detail"]["share"] == pytest.approx(1.0, abs=0.001)
    land = ss.LAND_SCORES[ekb_parcel["land_category_code"]][0]
    assert result["score"] == pytest.approx((0.25 * 73 + 0.15 * land) / 0.4, abs=0.051)
    assert result["unknown"] == ["accessibility", "utilities"]


def test_vologda_point_accessibility_from_the_network_and_postgis(engine):
    result = site_appeal(engine, ANONYMOUS, lon=VOLOGDA[0], lat=VOLOGDA[1])
    access = _component(result, "accessibility")
    assert access["status"] == "ok" and 0 <= access["score"] <= 100
    raw = access["raw"]
    with engine.connect() as conn:
        point = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography"
        params = {"lon": VOLOGDA[0], "lat": VOLOGDA[1]}
        # brute force over every row: the KNN shortlist re-ranked by geodesic distance finds the same
        rail = conn.execute(text(f"SELECT min(ST_Distance(geom::geography, {point})) FROM cdt.railways"),
                            params).scalar()
        street = conn.execute(text(f"SELECT min(ST_Distance(geom::geography, {point})) FROM cdt.street_edges "
                                   "WHERE drive"), params).scalar()
    assert raw["railway_m"] == pytest.approx(rail, abs=0.1) and raw["street_m"] == pytest.approx(street, abs=0.1)
    assert 0 < raw["drive_centre_min"] < raw["walk_centre_min"]
    factors = {f["key"]: f for f in access["factors"]}
    assert factors["stop_walk_min"]["score"] is None and "stop" in factors["stop_walk_min"]["why"]
    assert factors["railway_m"]["score"] == pytest.approx(round(ss.ramp_down(rail, *ss.RAILWAY_M), 1), abs=0.05)
    # no parcel, zone or utility here in the demo: accessibility alone carries the score
    assert result["unknown"] == ["utilities", "zoning", "land"]
    assert result["score"] == pytest.approx(access["score"], abs=0.051)
    assert result["site"]["territory"]["oktmo"] == "19701000"
    assert result["site"]["kind"] == "point"


def _utility_line(conn, kind: str, metres: float, capacity: float | None = None, load: float | None = None) -> None:
    """A 400 m line of a kind whose middle lies `metres` north of the Vologda point."""
    conn.execute(text("""
        WITH p AS (SELECT ST_Project(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :m, 0) AS g)
        INSERT INTO cdt.utility_lines (kind, capacity, load, territory_id, geom)
        SELECT :kind, :cap, :load, (SELECT id FROM cdt.territories WHERE oktmo = '19701000'),
               ST_Multi(ST_MakeLine(ST_Project(g, 200, pi() / 2)::geometry, ST_Project(g, 200, -pi() / 2)::geometry))
        FROM p"""), {"lon": VOLOGDA[0], "lat": VOLOGDA[1], "m": metres, "kind": kind, "cap": capacity, "load": load})


def test_utilities_per_kind_with_capacity_and_read_rules(engine):
    with engine.connect() as conn, conn.begin() as tx:
        _utility_line(conn, "heat", 500)
        _utility_line(conn, "power", 1650, capacity=10, load=12)  # overloaded: no spare capacity
        conn.execute(text("""INSERT INTO cdt.facilities (type_code, name, capacity, capacity_unit, geom)
            VALUES ('boiler_house', 'Test boiler house', 25, 'Gcal/h',
                    ST_Project(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 900, pi())::geometry)"""),
                     {"lon": VOLOGDA[0], "lat": VOLOGDA[1]})
        federal = site_appeal(engine, FEDERAL, lon=VOLOGDA[0], lat=VOLOGDA[1], conn=conn)
        public = site_appeal(engine, ANONYMOUS, lon=VOLOGDA[0], lat=VOLOGDA[1], conn=conn)
        tx.rollback()
    util = _component(federal, "utilities")
    factors = {f["key"]: f for f in util["factors"]}
    assert factors["heat"]["raw"] == pytest.approx(500, abs=2)
    assert factors["heat"]["score"] == pytest.approx(ss.utility_score("heat", factors["heat"]["raw"]), abs=0.05)
    assert factors["heat"]["detail"]["nearest"]["layer"] == "utility_lines"
    assert factors["heat"]["detail"]["source"]["name"] == "Test boiler house"
    assert factors["heat"]["detail"]["source"]["capacity"] == 25
    assert factors["power"]["raw"] == pytest.approx(1650, abs=2) and factors["power"]["detail"]["no_spare"] is True
    assert factors["power"]["score"] == pytest.approx(25, abs=0.1) and "no spare capacity" in factors["power"]["why"]
    assert {k for k in factors if factors[k]["score"] is None} == {"gas", "water", "sewer"}
    assert util["score"] == pytest.approx((factors["heat"]["score"] + factors["power"]["score"]) / 2, abs=0.1)
    assert federal["unknown"] == ["zoning", "land"]
    # the public may not read the utility networks: only the (public) boiler house counts, and it says so
    pub = _component(public, "utilities")
    heat = next(f for f in pub["factors"] if f["key"] == "heat")
    assert heat["raw"] == pytest.approx(900, abs=2) and heat["detail"]["nearest"]["layer"] == "facilities:boiler_house"
    assert "restricted" in pub["why"]
    assert next(f for f in pub["factors"] if f["key"] == "power")["score"] is None


def test_service_refusals(engine):
    with pytest.raises(NotFound):
        site_appeal(engine, ANONYMOUS, parcel_id=2_000_000_000)
    with pytest.raises(NotFound):
        site_appeal(engine, ANONYMOUS, cadastral_number="99:99:9999999:1")
    with pytest.raises(InvalidParameterValue, match="outside every territory"):
        site_appeal(engine, ANONYMOUS, lon=0.0, lat=0.0)
    with pytest.raises(InvalidParameterValue, match="exactly one site"):
        site_appeal(engine, ANONYMOUS, parcel_id=1, lon=VOLOGDA[0], lat=VOLOGDA[1])
    with pytest.raises(InvalidParameterValue, match="both lon and lat"):
        site_appeal(engine, ANONYMOUS, lon=VOLOGDA[0])
    with pytest.raises(InvalidParameterValue, match="out of range"):
        site_appeal(engine, ANONYMOUS, lon=200.0, lat=59.0)
    with pytest.raises(InvalidParameterValue, match="negative"):
        site_appeal(engine, ANONYMOUS, lon=VOLOGDA[0], lat=VOLOGDA[1], weights={"land": -1})
    assert COVERAGE_M >= 10_000  # city-scale layers: the coverage radius is wider than any city's sites


# --- the process over HTTP ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(db_url):
    return create_app(Config(), database_url=db_url).test_client()


def _execute(client, inputs: dict, token: str | None = None):
    return client.post("/processes/site-appeal/execution", json={"inputs": inputs, "response": "document"},
                       headers=bearer(token) if token else {})


def test_process_is_described_and_runs_synchronously(client, engine, ekb_parcel, tokens):
    desc = client.get("/processes/site-appeal").get_json()
    assert {"parcel_id", "cadastral_number", "lon", "lat", "weights"} <= set(desc["inputs"])
    assert "sync-execute" in desc["jobControlOptions"]
    equal = {"accessibility": 1, "utilities": 1, "zoning": 1, "land": 1}
    resp = _execute(client, {"lon": VOLOGDA[0], "lat": VOLOGDA[1], "weights": equal})
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert set(out) == {"score", "grade", "components", "weights", "unknown", "notes", "site"}
    assert out["weights"]["given"] == {k: 0.25 for k in ss.COMPONENTS}
    assert out["weights"]["used"]["accessibility"] == 1.0
    direct = site_appeal(engine, ANONYMOUS, lon=VOLOGDA[0], lat=VOLOGDA[1], weights=equal)
    assert out["score"] == direct["score"] and out["components"] == direct["components"]
    signed_in = _execute(client, {"cadastral_number": ekb_parcel["cadastral_number"]}, tokens["t_city_ekb"])
    assert signed_in.status_code == 200 and signed_in.get_json()["site"]["parcel"]["id"] == ekb_parcel["id"]


@pytest.mark.parametrize(("inputs", "status", "code"), [
    ({"parcel_id": 2_000_000_000}, 404, "NotFound"),
    ({"cadastral_number": "99:99:9999999:1"}, 404, "NotFound"),
    ({"cadastral_number": "not a number"}, 400, "InvalidParameterValue"),
    ({"parcel_id": 0}, 400, "InvalidParameterValue"),
    ({"lon": 200, "lat": 59.2}, 400, "InvalidParameterValue"),
    ({"lon": "east", "lat": 59.2}, 400, "InvalidParameterValue"),
    ({"lon": 39.89}, 400, "InvalidParameterValue"),
    ({"lon": 0, "lat": 0}, 400, "InvalidParameterValue"),
    ({}, 400, "InvalidParameterValue"),
    ({"lon": 39.89, "lat": 59.22, "weights": {"land": -1}}, 400, "InvalidParameterValue"),
    ({"lon": 39.89, "lat": 59.22, "weights": {"accessibility": 0, "utilities": 0, "zoning": 0, "land": 0}}, 400,
     "InvalidParameterValue"),
    ({"lon": 39.89, "lat": 59.22, "weights": {"beauty": 1}}, 400, "InvalidParameterValue"),
    ({"lon": 39.89, "lat": 59.22, "weights": [1, 2]}, 400, "InvalidParameterValue"),
    ({"lon": 39.89, "lat": 59.22, "colour": "red"}, 400, "InvalidParameterValue"),
])
def test_bad_inputs_get_an_ogc_exception(client, inputs, status, code):
    resp = _execute(client, inputs)
    body = resp.get_json()
    assert resp.status_code == status and body["code"] == code and body["description"], body
