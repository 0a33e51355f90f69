"""The Vologda demo and the KPT territories: counts and sums match the source files."""

import geopandas as gpd
import pytest
from sqlalchemy import text

from layers.ingest.demo import load_demo
from tests.conftest import scalar, table_fingerprints


def test_buildings_and_residents_match_source(engine, data_dir):
    src = gpd.read_parquet(data_dir / "vologda" / "buildings.parquet")
    assert scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE source = 'vologda/buildings'") == len(src) == 25324
    assert scalar(engine, "SELECT sum(residents) FROM cdt.buildings") == int(src["population"].sum()) == 356810
    living = scalar(engine, "SELECT sum(living_area_m2) FROM cdt.buildings")
    assert living == pytest.approx(src["living_area"].sum(), rel=1e-9)
    # Geodesic footprint areas agree with the source's UTM areas (UTM scale error < 0.1% here).
    ratio = scalar(engine, "SELECT sum(footprint_m2) FROM cdt.buildings") / src["footprint_area"].sum()
    assert ratio == pytest.approx(1.0, abs=0.002)
    assert scalar(engine, "SELECT count(*) FROM cdt.buildings b JOIN cdt.territories t ON t.id = b.territory_id "
                          "WHERE t.oktmo = '19701000'") == 25324


def test_facilities_capacities_and_skipped(engine, data_dir):
    schools = gpd.read_parquet(data_dir / "vologda" / "school.parquet")
    kinder = gpd.read_parquet(data_dir / "vologda" / "kindergarten.parquet")
    located = schools[schools.geometry.notna() & ~schools.geometry.is_empty]
    assert scalar(engine, "SELECT count(*) FROM cdt.facilities WHERE type_code = 'school'") == len(located) == 42
    assert scalar(engine, "SELECT sum(capacity) FROM cdt.facilities WHERE type_code = 'school'") == \
        located["capacity"].sum() == 35600
    assert scalar(engine, "SELECT count(*) FROM cdt.facilities WHERE type_code = 'kindergarten'") == 120
    assert scalar(engine, "SELECT sum(capacity) FROM cdt.facilities WHERE type_code = 'kindergarten'") == \
        kinder["capacity"].sum() == 28270
    # The 21 schools without geometry were reported as skipped, not invented.
    report = scalar(engine, "SELECT report FROM cdt.ingest_runs WHERE source = 'vologda/school'")
    assert len(report["skipped"]) == 21 and all(s["reason"] == "no geometry" for s in report["skipped"])
    kreport = scalar(engine, "SELECT report FROM cdt.ingest_runs WHERE source = 'vologda/kindergarten'")
    assert any("also listed as a school" in w["reason"] for w in kreport["warnings"])


def test_territories_hierarchy(engine):
    with engine.connect() as conn:
        rows = {r.oktmo: r for r in conn.execute(text(
            "SELECT t.oktmo, t.name, t.level, p.oktmo AS parent, t.population, "
            "ST_Area(t.boundary::geography) / 1e6 AS km2 FROM cdt.territories t "
            "LEFT JOIN cdt.territories p ON p.id = t.parent_id"))}
    assert rows["19701000"].level == "urban_okrug" and rows["19701000"].parent == "19000000"
    assert rows["19000000"].level == "federal_subject" and "Вологодская" in rows["19000000"].name
    assert rows["19701000"].population == 301642  # cities.csv
    assert rows["19701000"].km2 == pytest.approx(114, rel=0.05)  # data README: ~114 km²
    assert {"65701000", "97710000"} <= set(rows)


def test_kpt_parcel_lands_in_ekaterinburg(engine):
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT ST_X(ST_PointN(ST_ExteriorRing(ST_GeometryN(p.geom, 1)), 1)) AS lon, "
            "ST_Y(ST_PointN(ST_ExteriorRing(ST_GeometryN(p.geom, 1)), 1)) AS lat, t.oktmo, p.area_m2, "
            "p.area_declared_m2, p.land_category, p.permitted_use, p.address "
            "FROM cdt.parcels p JOIN cdt.territories t ON t.id = p.territory_id "
            "WHERE cadastral_number = '66:41:0302032:1'")).one()
    assert row.lon == pytest.approx(60.557, abs=0.001) and row.lat == pytest.approx(56.854, abs=0.001)
    assert row.oktmo == "65701000"
    assert row.area_m2 == pytest.approx(row.area_declared_m2, rel=0.02)
    assert "Опалихинская" in row.address
    assert row.land_category and row.permitted_use
    assert scalar(engine, "SELECT count(*) FROM cdt.parcels p JOIN cdt.territories t ON t.id = p.territory_id "
                          "WHERE t.oktmo = '97710000'") == 58
    # Geodesic areas match the declared cadastral areas for nearly every parcel.
    share = scalar(engine, "SELECT avg((abs(area_m2 - area_declared_m2) / area_declared_m2 < 0.02)::int) "
                           "FROM cdt.parcels WHERE geom IS NOT NULL")
    assert share > 0.95


def test_network_is_noded_and_routable(engine):
    # Noding split the 1,901 source lines at intersections: more edges than lines, same length.
    assert scalar(engine, "SELECT count(*) FROM cdt.street_edges") > 1901
    km = scalar(engine, "SELECT sum(length_m) / 1000 FROM cdt.street_edges")
    assert km == pytest.approx(484, rel=0.01)  # data README: ~484 km
    # No two edges cross without a shared node.
    assert scalar(engine, """SELECT count(*) FROM cdt.street_edges a JOIN cdt.street_edges b
        ON a.id < b.id AND ST_Crosses(a.geom, b.geom)""") == 0
    # Route between the two residential buildings farthest apart among the 200 most populated.
    with engine.connect() as conn:
        a, b, straight = conn.execute(text("""
            WITH top AS (SELECT id, ST_Centroid(geom) c FROM cdt.buildings ORDER BY residents DESC LIMIT 200)
            SELECT x.id, y.id, ST_Distance(x.c::geography, y.c::geography) FROM top x, top y
            ORDER BY ST_Distance(x.c::geography, y.c::geography) DESC LIMIT 1""")).one()
        nodes = [conn.execute(text("""SELECT n.id FROM cdt.street_nodes n, cdt.buildings b WHERE b.id = :b
            ORDER BY n.geom <-> ST_Centroid(b.geom) LIMIT 1"""), {"b": bid}).scalar() for bid in (a, b)]
        route = conn.execute(text("""SELECT max(agg_cost) FROM pgr_dijkstra(
            'SELECT id, from_node AS source, to_node AS target, length_m AS cost, length_m AS reverse_cost
             FROM cdt.street_edges', :s, :t, false)"""), {"s": nodes[0], "t": nodes[1]}).scalar()
    assert straight > 8000
    assert route is not None, "no route between two far buildings"
    assert straight * 0.9 < route < straight * 2


def test_reloading_the_demo_changes_nothing(engine, data_dir):
    before = table_fingerprints(engine)
    messages: list[str] = []
    reports = load_demo(engine, data_dir, actor="test:again", echo=messages.append)
    assert all(r.already_loaded or (r.inserted == 0 and r.updated == 0) for r in reports)
    assert table_fingerprints(engine) == before


def test_reloading_a_file_updates_by_natural_key(engine, data_dir):
    """Forcing a re-load of the same buildings file: every row unchanged, no duplicates, no version bump."""
    from layers.ingest.service import load_file

    report = load_file(engine, data_dir / "vologda" / "buildings.parquet", "buildings", actor="test:reload",
                       source="vologda/buildings", territory="19701000",
                       mapping={"floors": "number_of_floors", "living_area_m2": "living_area",
                                "floor_area_m2": "build_floor_area", "residents": "population",
                                "is_living": "is_living"})
    assert (report.inserted, report.updated, report.unchanged) == (0, 0, 25324)
    assert scalar(engine, "SELECT count(*) FROM cdt.buildings") == 25324
    assert scalar(engine, "SELECT max(version) FROM cdt.buildings") == 1
