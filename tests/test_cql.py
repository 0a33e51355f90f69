"""CQL2 filters compiled by layers.cql, run against the demo city in PostGIS.

Every expected count comes from an independent hand-written SQL (or geopandas) over the same rows;
the tests only read the database.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import geopandas
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point, Polygon, mapping
from sqlalchemy import text

from layers.cql import LANGS, Queryable, compile_filter
from layers.crs import CRS84, EPSG4326, msk_for, utm
from layers.errors import InvalidParameterValue

KINDS = {"floors": "integer", "residents": "integer", "use": "string", "is_living": "boolean", "year": "integer",
         "address": "string", "living_area_m2": "number", "geom": "geometry", "updated_at": "datetime"}
Q = {name: Queryable(name, f't."{name}"', kind) for name, kind in KINDS.items()}
# The demo's buildings have no strings (use/address are NULL), so string operators run on facilities.
F = {name: Queryable(name, f't."{name}"', kind) for name, kind in
     {"type_code": "string", "name": "string", "address": "string", "capacity": "number", "geom": "geometry"}.items()}
QUERYABLES = {"buildings": Q, "facilities": F}
UTM = utm(39.9, 59.2)


def count(engine, where: str, params: dict | None = None, table: str = "buildings") -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM cdt.{table} t WHERE {where}"), params or {}).scalar_one()


def cql_count(engine, expression, lang: str = "cql2-text", crs=CRS84, table: str = "buildings") -> int:
    sql, params = compile_filter(expression, lang, QUERYABLES[table], crs)
    return count(engine, sql, params, table)


def prop(name: str) -> dict:
    return {"property": name}


@pytest.fixture(scope="module")
def city(engine) -> dict:
    """Facts of the loaded demo the filters are built from (never expected counts)."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT count(*) AS total, min(updated_at) AS tmin, max(updated_at) AS tmax, "
            "ST_X(ST_Centroid(ST_Extent(geom))) AS x, ST_Y(ST_Centroid(ST_Extent(geom))) AS y "
            "FROM cdt.buildings")).mappings().one()
    return dict(row)


@pytest.fixture(scope="module")
def area(city) -> Polygon:
    """An irregular pentagon of ~1.5 km around the city centre, in CRS84."""
    x, y = city["x"], city["y"]
    return Polygon([(x - 0.012, y - 0.004), (x + 0.004, y - 0.009), (x + 0.014, y + 0.002),
                    (x + 0.001, y + 0.008), (x - 0.010, y + 0.005)])


@pytest.fixture(scope="module")
def frame(engine) -> geopandas.GeoDataFrame:
    with engine.connect() as conn:
        return geopandas.read_postgis("SELECT geom FROM cdt.buildings", conn, geom_col="geom")


# --- scalar operators -----------------------------------------------------------------------------------------

SCALAR = [
    ("floors > 5", "floors > 5"),
    ("floors > 5 AND use = 'жилой'", "floors > 5 AND use = 'жилой'"),
    ("floors = 2", "floors = 2"),
    ("floors <> 2", "floors <> 2"),
    ("floors < 3", "floors < 3"),
    ("floors <= 3", "floors <= 3"),
    ("floors >= 9", "floors >= 9"),
    ("5 < floors", "floors > 5"),
    ("floors = '5'", "floors = 5"),
    ("floors > 2.5", "floors > 2.5"),
    ("living_area_m2 > 1000.5", "living_area_m2 > 1000.5"),
    ("residents > floors", "residents > floors"),
    ("\"floors\" >= 3 AND is_living = TRUE", "floors >= 3 AND is_living"),
    ("floors > 9 OR residents > 100", "floors > 9 OR residents > 100"),
    ("NOT (floors > 3)", "NOT (floors > 3)"),
    ("NOT floors > 3 AND residents > 0", "NOT (floors > 3) AND residents > 0"),
    ("is_living = TRUE", "is_living"),
    ("is_living = false", "NOT is_living"),
    ("floors IN (1, 2, 5)", "floors IN (1, 2, 5)"),
    ("floors NOT IN (1, 2)", "floors NOT IN (1, 2)"),
    ("floors BETWEEN 2 AND 4", "floors BETWEEN 2 AND 4"),
    ("floors NOT BETWEEN 2 AND 4", "floors NOT BETWEEN 2 AND 4"),
    ("address IS NULL", "address IS NULL"),
    ("address IS NOT NULL", "address IS NOT NULL"),
    ("year IS NULL OR year < 1960", "year IS NULL OR year < 1960"),
    ("INCLUDE", "TRUE"),
    ("EXCLUDE", "FALSE"),
]
STRINGS = [
    ("type_code = 'school'", "type_code = 'school'"),
    ("type_code <> 'school'", "type_code <> 'school'"),
    ("type_code IN ('school', 'nothing')", "type_code IN ('school', 'nothing')"),
    ("type_code NOT IN ('school')", "type_code NOT IN ('school')"),
    ("name LIKE 'Средняя%'", "name LIKE 'Средняя%'"),
    ("name NOT LIKE '%№2_'", "name NOT LIKE '%№2_'"),
    ("CASEI(name) LIKE CASEI('%ШКОЛА%')", "lower(name) LIKE '%школа%'"),
    ("CASEI(type_code) = CASEI('SCHOOL')", "type_code = 'school'"),
    ("name > 'Р'", "name > 'Р'"),
    ("name BETWEEN 'А' AND 'Д'", "name BETWEEN 'А' AND 'Д'"),
    ("capacity > 200 AND type_code = 'kindergarten'", "capacity > 200 AND type_code = 'kindergarten'"),
    ("address IS NULL OR name LIKE '%№1%'", "address IS NULL OR name LIKE '%№1%'"),
]


@pytest.mark.parametrize(("cql", "expected"), SCALAR)
def test_scalar_operators(engine, cql, expected):
    assert cql_count(engine, cql) == count(engine, expected)


@pytest.mark.parametrize(("cql", "expected"), STRINGS)
def test_string_operators(engine, cql, expected):
    assert cql_count(engine, cql, table="facilities") == count(engine, expected, table="facilities")


def test_counts_are_not_trivial(engine, city):
    """The scalar cases above would prove little if the demo had no spread."""
    assert 0 < cql_count(engine, "floors > 5") < city["total"]
    assert 0 < cql_count(engine, "is_living = TRUE") < city["total"]
    schools = cql_count(engine, "CASEI(name) LIKE CASEI('%ШКОЛА%')", table="facilities")
    assert 0 < schools < count(engine, "TRUE", table="facilities")


def test_params_are_named_by_prefix_and_all_values_bound():
    sql, params = compile_filter("floors > 5 AND use = 'жилой' AND S_INTERSECTS(geom, POINT(39.9 59.2))",
                                 "cql2-text", Q, prefix="f")
    assert set(params) == {"f0", "f1", "f2"}
    assert "жилой" not in sql and "39.9" not in sql and " 5" not in sql
    assert re.findall(r":(\w+)", sql) == ["f0", "f1", "f2"]


def test_two_filters_with_own_prefixes_combine(engine, city, area):
    a_sql, a_params = compile_filter(f"S_INTERSECTS(geom, {area.wkt})", "cql2-text", Q, prefix="a")
    b_sql, b_params = compile_filter({"op": ">", "args": [prop("floors"), 3]}, "cql2-json", Q, prefix="b")
    assert not set(a_params) & set(b_params)
    got = count(engine, f"{a_sql} AND {b_sql}", {**a_params, **b_params})
    assert got == count(engine, "ST_Intersects(geom, ST_GeomFromText(:w, 4326)) AND floors > 3", {"w": area.wkt})


# --- cql2-text and cql2-json agree ----------------------------------------------------------------------------

def json_twins(city) -> list[tuple[str, dict]]:
    x, y, t = city["x"], city["y"], city["tmin"]
    box = [x - 0.01, y - 0.01, x + 0.01, y + 0.01]
    both = [{"op": ">=", "args": [prop("floors"), 3]}, {"op": "=", "args": [prop("is_living"), True]}]
    return [
        ("floors > 5", {"op": ">", "args": [prop("floors"), 5]}),
        ("floors >= 3 AND is_living = TRUE", {"op": "and", "args": both}),
        ("floors >= 3 OR is_living = TRUE", {"op": "or", "args": both}),
        ("floors BETWEEN 2 AND 4", {"op": "between", "args": [prop("floors"), 2, 4]}),
        ("floors IN (1, 2, 5)", {"op": "in", "args": [prop("floors"), [1, 2, 5]]}),
        ("NOT (floors IN (1, 2))", {"op": "not", "args": [{"op": "in", "args": [prop("floors"), [1, 2]]}]}),
        ("year IS NULL", {"op": "isNull", "args": [prop("year")]}),
        ("is_living = TRUE", {"op": "=", "args": [prop("is_living"), True]}),
        (f"S_INTERSECTS(geom, BBOX({', '.join(map(str, box))}))",
         {"op": "s_intersects", "args": [prop("geom"), {"bbox": box}]}),
        (f"S_DWITHIN(geom, POINT({x} {y}), 250)",
         {"op": "s_dwithin", "args": [prop("geom"), {"type": "Point", "coordinates": [x, y]}, 250]}),
        (f"T_AFTER(updated_at, TIMESTAMP('{t.isoformat()}'))",
         {"op": "t_after", "args": [prop("updated_at"), {"timestamp": t.isoformat()}]}),
        (f"T_INTERSECTS(updated_at, INTERVAL('..', '{t.isoformat()}'))",
         {"op": "t_intersects", "args": [prop("updated_at"), {"interval": ["..", t.isoformat()]}]}),
    ]


STRING_TWINS = [
    ("type_code IN ('school', 'x')", {"op": "in", "args": [prop("type_code"), ["school", "x"]]}),
    ("name LIKE 'Средняя%'", {"op": "like", "args": [prop("name"), "Средняя%"]}),
    ("CASEI(name) LIKE CASEI('%ШКОЛА%')",
     {"op": "like", "args": [{"op": "casei", "args": [prop("name")]}, {"op": "casei", "args": ["%ШКОЛА%"]}]}),
    ("NOT (name LIKE '%№%')", {"op": "not", "args": [{"op": "like", "args": [prop("name"), "%№%"]}]}),
]


def test_text_and_json_agree(engine, city):
    twins = [("buildings", *t) for t in json_twins(city)] + [("facilities", *t) for t in STRING_TWINS]
    for i, (table, cql_text, cql_json) in enumerate(twins):
        as_text = cql_count(engine, cql_text, "cql2-text", table=table)
        assert cql_count(engine, cql_text, "cql-text", table=table) == as_text
        doc = json.dumps(cql_json) if i % 2 else cql_json  # JSON text and decoded dicts alike
        assert cql_count(engine, doc, "cql2-json", table=table) == as_text, cql_text


# --- spatial --------------------------------------------------------------------------------------------------

def test_bbox_intersects(engine, city):
    x, y = city["x"], city["y"]
    got = cql_count(engine, f"S_INTERSECTS(geom, BBOX({x - 0.01}, {y - 0.01}, {x + 0.01}, {y + 0.01}))")
    expected = count(engine, "ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
                     {"a": x - 0.01, "b": y - 0.01, "c": x + 0.01, "d": y + 0.01})
    assert got == expected
    assert 0 < got < city["total"]


@pytest.mark.parametrize(("op", "predicate"), [
    ("S_INTERSECTS", "intersects"), ("S_DISJOINT", "disjoint"), ("S_WITHIN", "within"), ("S_CONTAINS", "contains"),
    ("S_OVERLAPS", "overlaps"), ("S_TOUCHES", "touches"), ("S_CROSSES", "crosses"), ("S_EQUALS", "geom_equals"),
])
def test_spatial_predicates_match_geopandas(engine, frame, area, op, predicate):
    expected = int(getattr(frame.geometry, predicate)(area).sum())
    assert cql_count(engine, f"{op}(geom, {area.wkt})") == expected
    if op in ("S_INTERSECTS", "S_WITHIN"):
        assert expected > 0


def test_contains_point_and_equals_own_geometry(engine):
    with engine.connect() as conn:
        geojson, inside = conn.execute(text(
            "SELECT ST_AsGeoJSON(geom, 15), ST_AsText(ST_PointOnSurface(geom)) FROM cdt.buildings "
            "ORDER BY id LIMIT 1 OFFSET 100")).one()
    contains = cql_count(engine, f"S_CONTAINS(geom, {inside})")
    assert contains == count(engine, "ST_Contains(geom, ST_GeomFromText(:p, 4326))", {"p": inside}) >= 1
    equals = cql_count(engine, {"op": "s_equals", "args": [prop("geom"), json.loads(geojson)]}, "cql2-json")
    assert equals == count(engine, "ST_Equals(geom, ST_GeomFromGeoJSON(:g))", {"g": geojson}) >= 1


def test_dwithin_metres(engine, city):
    x, y = city["x"], city["y"]
    near = cql_count(engine, f"S_DWITHIN(geom, POINT({x} {y}), 300)")
    expected = count(engine, "ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography) <= 300",
                     {"x": x, "y": y})
    assert near == expected
    assert 0 < cql_count(engine, f"S_DWITHIN(geom, POINT({x} {y}), 100)") < near


def test_utm_filter_crs_equals_crs84(engine, area):
    to_utm = Transformer.from_crs(4326, 32637, always_xy=True)
    in_utm = shapely.transform(area, to_utm.transform, interleaved=False)
    assert in_utm.bounds[0] > 1000  # really metres
    assert cql_count(engine, f"S_INTERSECTS(geom, {in_utm.wkt})", crs=UTM) == cql_count(
        engine, f"S_INTERSECTS(geom, {area.wkt})")
    centre = Point(to_utm.transform(area.centroid.x, area.centroid.y))
    assert cql_count(engine, f"S_DWITHIN(geom, POINT({centre.x} {centre.y}), 200)", crs=UTM) == cql_count(
        engine, f"S_DWITHIN(geom, POINT({area.centroid.x} {area.centroid.y}), 200)")


def test_epsg4326_is_lat_lon(engine, city, area):
    flipped = shapely.transform(area, lambda x, y: (y, x), interleaved=False)
    lonlat = cql_count(engine, f"S_INTERSECTS(geom, {area.wkt})")
    assert cql_count(engine, f"S_INTERSECTS(geom, {flipped.wkt})", crs=EPSG4326) == lonlat
    assert cql_count(engine, {"op": "s_intersects", "args": [prop("geom"), mapping(flipped)]}, "cql2-json",
                     crs=EPSG4326) == lonlat
    x, y = city["x"], city["y"]
    assert cql_count(engine, f"S_INTERSECTS(geom, BBOX({y - 0.01}, {x - 0.01}, {y + 0.01}, {x + 0.01}))",
                     crs=EPSG4326) == cql_count(
        engine, f"S_INTERSECTS(geom, BBOX({x - 0.01}, {y - 0.01}, {x + 0.01}, {y + 0.01}))")


def test_msk_filter_crs_with_two_literals(engine, area):
    msk = msk_for(39.9, 59.2, "35")
    if msk is None:
        pytest.skip("no МСК-35 zone in data/cadastre/msk_proj4.csv")
    to_msk = Transformer.from_crs("EPSG:4326", msk.proj, always_xy=True)
    a, b = (shapely.transform(g, to_msk.transform, interleaved=False) for g in (area, area.buffer(-0.003)))
    sql, params = compile_filter(f"S_INTERSECTS(geom, {a.wkt}) AND NOT S_WITHIN(geom, {b.wkt})", "cql2-text", Q, msk)
    assert len(params) == 4  # two geometries, two PROJ strings, none clashing
    expected = count(engine, "ST_Intersects(geom, ST_GeomFromText(:a, 4326)) AND NOT ST_Within(geom, "
                             "ST_GeomFromText(:b, 4326))", {"a": area.wkt, "b": area.buffer(-0.003).wkt})
    assert count(engine, sql, params) == expected > 0


# --- temporal -------------------------------------------------------------------------------------------------

TEMPORAL = [
    ("T_AFTER(updated_at, TIMESTAMP('{lo}'))", "updated_at > :lo"),
    ("T_AFTER(updated_at, TIMESTAMP('{tmin}'))", "updated_at > :tmin"),
    ("updated_at T_AFTER TIMESTAMP('{lo}')", "updated_at > :lo"),
    ("T_BEFORE(updated_at, TIMESTAMP('{tmax}'))", "updated_at < :tmax"),
    ("T_BEFORE(updated_at, TIMESTAMP('{hi}'))", "updated_at < :hi"),
    ("T_EQUALS(updated_at, TIMESTAMP('{tmin}'))", "updated_at = :tmin"),
    ("T_DURING(updated_at, INTERVAL('{lo}', '{hi}'))", "updated_at > :lo AND updated_at < :hi"),
    ("T_DURING(updated_at, INTERVAL('..', '{tmax}'))", "updated_at < :tmax"),
    ("T_DURING(updated_at, INTERVAL('{lo}', '..'))", "updated_at > :lo"),
    ("T_INTERSECTS(updated_at, INTERVAL('{tmin}', '{tmax}'))", "updated_at BETWEEN :tmin AND :tmax"),
    ("T_DISJOINT(updated_at, INTERVAL('{tmin}', '{tmin}'))", "updated_at <> :tmin"),
    ("T_DISJOINT(updated_at, TIMESTAMP('{lo}'))", "TRUE"),
    ("T_AFTER(updated_at, DATE('2000-01-01'))", "updated_at > DATE '2000-01-01'"),
    ("T_BEFORE(updated_at, INTERVAL('2000-01-01', '2001-01-01'))", "updated_at < DATE '2000-01-01'"),
    ("updated_at > TIMESTAMP('{lo}')", "updated_at > :lo"),
]


@pytest.mark.parametrize(("cql", "expected"), TEMPORAL)
def test_temporal(engine, city, cql, expected):
    stamps = {"tmin": city["tmin"], "tmax": city["tmax"],
              "lo": city["tmin"] - timedelta(days=1), "hi": city["tmax"] + timedelta(days=1)}
    cql = cql.format(**{k: v.isoformat() for k, v in stamps.items()})
    assert cql_count(engine, cql) == count(engine, expected, stamps)


# --- injection and malformed input ----------------------------------------------------------------------------

def test_injection_attempts_are_bound_or_rejected(engine, city, unchanged):
    evil = "x'; DROP TABLE cdt.buildings; --"
    sql, params = compile_filter("use = 'x''; DROP TABLE cdt.buildings; --'", "cql2-text", Q)
    assert "DROP" not in sql and list(params.values()) == [evil]
    assert count(engine, sql, params) == count(engine, "use = :v", {"v": evil}) == 0
    sql, params = compile_filter({"op": "=", "args": [prop("use"), evil]}, "cql2-json", Q)
    assert "DROP" not in sql and count(engine, sql, params) == 0
    pattern = "%' OR '1'='1"
    assert cql_count(engine, "use LIKE '%'' OR ''1''=''1'") == count(engine, "use LIKE :p", {"p": pattern}) == 0
    for bad, lang in [('"floors; DROP" = 1', "cql2-text"),
                      ('"floors; DROP TABLE cdt.buildings; --" > 1', "cql2-text"),
                      ("1=1) OR (1=1", "cql2-text"),
                      ("floors = 1; DROP TABLE cdt.buildings", "cql2-text"),
                      ("floors > 1 --", "cql2-text"),
                      ({"op": "=", "args": [prop('floors"; DROP TABLE cdt.buildings; --'), 1]}, "cql2-json"),
                      ({"op": "s_intersects",
                        "args": [prop("geom"), {"type": "Point", "coordinates": ["1); DROP", 2]}]}, "cql2-json")]:
        with pytest.raises(InvalidParameterValue):
            compile_filter(bad, lang, Q)
    assert count(engine, "TRUE") == city["total"]


MALFORMED_TEXT = [
    "", "floors >", "floors > 5 AND", "(floors > 5", "floors", "'abc'", "use = 'unterminated",
    "nosuch = 1", "floors = 'abc'", "floors = TRUE", "is_living = 'yes'", "use = 5", "use = floors",
    "floors LIKE '5%'", "geom = 5", "floors IN ()", "floors + 1 > 3", "ACCENTI(use) = 'x'", "UPPER(use) = 'X'",
    "S_INTERSECTS(floors, POINT(1 2))", "S_INTERSECTS(geom, 5)", "S_INTERSECTS(geom, POLYGON((1 2, 3 4)))",
    "S_INTERSECTS(geom, SRID=4326;POINT(1 2))", "S_DWITHIN(floors, POINT(1 2), 10)", "BBOX(geom, 1, 2, 3, 4)",
    "RELATE(geom, POINT(1 2), 'XYZ')", "T_AFTER(floors, TIMESTAMP('2020-01-01T00:00:00Z'))",
    "T_AFTER(updated_at, TIMESTAMP('2020-13-01T00:00:00Z'))", "T_DURING(updated_at, INTERVAL('x', '..'))",
    "updated_at > INTERVAL('..', '..')", "floors = 99999999999999999999",
]
MALFORMED_JSON = [
    "{not json", "[1, 2]", 5, {}, {"op": "foo", "args": [prop("floors"), 1]}, {"op": ">", "args": [prop("floors")]},
    {"op": ">", "args": 5}, {"op": "=", "args": [prop("floors"), None]}, {"op": "=", "args": [prop("nosuch"), 1]},
    {"op": "+", "args": [prop("floors"), 1]}, {"op": "a_contains", "args": [prop("use"), ["a"]]},
    {"op": "s_intersects", "args": [prop("geom"), {"type": "Polygon", "coordinates": "x"}]},
    {"op": "s_intersects", "args": [prop("geom"), {"bbox": [1, 2, 3]}]},
    {"op": "s_dwithin", "args": [prop("geom"), {"type": "Point", "coordinates": [1, 2]}, -1]},
    {"op": "t_after", "args": [prop("updated_at"), {"timestamp": "yesterday"}]},
    {"op": "t_during", "args": [prop("updated_at"), {"interval": ["2020-01-01"]}]},
]


@pytest.mark.parametrize("bad", MALFORMED_TEXT)
def test_malformed_text_is_invalid_parameter(bad):
    with pytest.raises(InvalidParameterValue) as err:
        compile_filter(bad, "cql2-text", Q)
    assert err.value.status == 400 and err.value.detail


@pytest.mark.parametrize("bad", MALFORMED_JSON, ids=lambda b: json.dumps(b)[:40])
def test_malformed_json_is_invalid_parameter(bad):
    with pytest.raises(InvalidParameterValue) as err:
        compile_filter(bad, "cql2-json", Q)
    assert err.value.status == 400 and err.value.detail


def test_error_messages_are_helpful():
    with pytest.raises(InvalidParameterValue, match="unknown property 'nosuch'.*floors.*updated_at"):
        compile_filter("nosuch = 1", "cql2-text", Q)
    with pytest.raises(InvalidParameterValue, match="syntax error.*column"):
        compile_filter("floors > > 1", "cql2-text", Q)
    with pytest.raises(InvalidParameterValue, match="filter-lang 'sql'.*" + ", ".join(LANGS)):
        compile_filter("floors > 1", "sql", Q)
    with pytest.raises(InvalidParameterValue, match="must be text"):
        compile_filter({"op": ">", "args": [prop("floors"), 1]}, "cql2-text", Q)
    with pytest.raises(InvalidParameterValue, match="LIKE.*integer"):
        compile_filter("floors LIKE '1%'", "cql2-text", Q)
    with pytest.raises(InvalidParameterValue, match="S_INTERSECTS.*'floors' is integer"):
        compile_filter("S_INTERSECTS(floors, POINT(1 2))", "cql2-text", Q)
    with pytest.raises(InvalidParameterValue, match="'abc' is not a valid integer"):
        compile_filter("floors = 'abc'", "cql2-text", Q)
