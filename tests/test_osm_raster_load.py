"""OSM PBF and GeoTIFF population rasters into a real database (layers.ingest.service).

OSM: pyrosm's bundled Helsinki extract (shipped with the package, never downloaded).
Raster: DERIVED from real data, data/vologda/buildings.parquet's `population` rasterized at
100 m, so it checks that the load conserves and redistributes people, not a census.
"""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pyrosm
import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import text

from geoserver_app.cli import main
from layers.db import engine_for
from layers.errors import IngestError
from layers.ingest.demo import VOLOGDA
from layers.ingest.osm import OsmExtract, read_osm
from layers.ingest.raster import rasterize_population
from layers.ingest.service import load_file, load_osm, load_raster
from layers.ingest.territories import load_territories
from tests.conftest import scalar, table_fingerprints

HELSINKI = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
SOURCE = "osm:Helsinki.osm.pbf"
OSM_TABLES = ("street_nodes", "street_edges", "buildings", "facilities")
TOTAL = 356_810  # residents of data/vologda/buildings.parquet
BUILDING_MAPPING = {"floors": "number_of_floors", "living_area_m2": "living_area", "floor_area_m2": "build_floor_area",
                    "residents": "population", "is_living": "is_living"}  # as layers/ingest/demo.py loads them


# --- OpenStreetMap ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def extract() -> OsmExtract:
    return read_osm(HELSINKI)


@pytest.fixture(scope="module")
def osm_db(make_database):
    """A fresh database with the Helsinki extract loaded once: (engine, reports by layer)."""
    engine = engine_for(make_database())
    reports = load_osm(engine, HELSINKI, actor="test")
    yield engine, {r.layer: r for r in reports}
    engine.dispose()


def test_network_is_noded_with_the_osm_length(osm_db, extract):
    engine, reports = osm_db
    edges = scalar(engine, "SELECT count(*) FROM cdt.street_edges")
    # Measured: 2,469 OSM street ways noded into 5,256 edges and 3,881 nodes.
    assert edges == reports["street_edges"].inserted > 2 * len(extract.streets)
    assert scalar(engine, "SELECT count(*) FROM cdt.street_nodes") == reports["street_nodes"].inserted
    geod = pyproj.Geod(ellps="WGS84")
    osm_m = sum(geod.geometry_length(g) for g in extract.streets.geometry)
    db_m = scalar(engine, "SELECT sum(length_m) FROM cdt.street_edges")
    assert db_m == pytest.approx(osm_m, rel=0.01)  # measured: 93.740 km both (73 m of duplicate overlap collapsed)
    assert scalar(engine, """SELECT count(*) FROM cdt.street_edges a JOIN cdt.street_edges b
        ON a.id < b.id AND ST_Crosses(a.geom, b.geom)""") == 0
    # Every edge starts and ends on its own nodes.
    assert scalar(engine, """SELECT count(*) FROM cdt.street_edges e
        JOIN cdt.street_nodes a ON a.id = e.from_node JOIN cdt.street_nodes b ON b.id = e.to_node
        WHERE NOT ST_Equals(ST_StartPoint(e.geom), a.geom) OR NOT ST_Equals(ST_EndPoint(e.geom), b.geom)""") == 0


def test_walk_and_drive_flags_carried_over(osm_db, extract):
    engine, _ = osm_db
    with engine.connect() as conn:
        edges = pd.read_sql_query(text("SELECT walk, drive, oneway, highway, ST_AsBinary(geom) AS wkb "
                                       "FROM cdt.street_edges"), conn)
    walk_only, drive_only = edges.walk & ~edges.drive, edges.drive & ~edges.walk
    assert walk_only.sum() > 1000 and drive_only.sum() > 10  # measured: 3,477 and 39
    # Each edge has the flags of an OSM way through its midpoint.
    mids = shapely.line_interpolate_point(shapely.from_wkb(edges.wkb.map(bytes)), 0.5, normalized=True)
    streets = extract.streets
    e, s = shapely.STRtree(streets.geometry.values).query(mids, predicate="dwithin", distance=1e-9)
    same = np.ones(len(e), dtype=bool)
    for col in ("walk", "drive", "oneway", "highway"):
        same &= edges[col].to_numpy()[e] == streets[col].to_numpy()[s]
    assert set(e[same]) == set(range(len(edges)))
    # And the length of each walk/drive combination is that of the OSM ways with it.
    geod = pyproj.Geod(ellps="WGS84")
    for (walk, drive), ways in streets.groupby(["walk", "drive"]):
        db_m = scalar(engine, "SELECT sum(length_m) FROM cdt.street_edges WHERE walk = :w AND drive = :d",
                      w=bool(walk), d=bool(drive))
        assert db_m == pytest.approx(sum(geod.geometry_length(g) for g in ways.geometry), rel=0.001)


def test_largest_component_is_routable(osm_db):
    engine, _ = osm_db
    graph = "SELECT id, from_node AS source, to_node AS target, length_m AS cost, length_m AS reverse_cost " \
            "FROM cdt.street_edges"
    with engine.connect() as conn:
        conn.execute(text("CREATE TEMP TABLE lcc AS WITH c AS (SELECT node, component, "
                          "count(*) OVER (PARTITION BY component) AS n FROM pgr_connectedComponents(:g)) "
                          "SELECT node FROM c WHERE n = (SELECT max(n) FROM c)"), {"g": graph})
        largest = conn.execute(text("SELECT count(*) FROM lcc")).scalar()
        total = conn.execute(text("SELECT count(*) FROM cdt.street_nodes")).scalar()
        # Two nodes of it at opposite corners (SW-most and NE-most).
        a, b, straight = conn.execute(text("""
            WITH p AS (SELECT n.id, n.geom FROM cdt.street_nodes n JOIN lcc ON lcc.node = n.id),
                 a AS (SELECT * FROM p ORDER BY ST_X(geom) + ST_Y(geom) LIMIT 1),
                 b AS (SELECT * FROM p ORDER BY ST_X(geom) + ST_Y(geom) DESC LIMIT 1)
            SELECT a.id, b.id, ST_Distance(a.geom::geography, b.geom::geography) FROM a, b""")).one()
        route = conn.execute(text("SELECT max(agg_cost), count(*) FROM pgr_dijkstra(:g, :a, :b, false)"),
                             {"g": graph, "a": a, "b": b}).one()
    print(f"largest component: {largest} of {total} nodes ({largest / total:.1%}); "
          f"route {route[0]:.0f} m over {route[1]} edges for {straight:.0f} m straight")
    assert largest / total > 0.95  # measured: 3,767 of 3,881 nodes (97.1%)
    assert straight > 1000
    assert route[0] is not None, "no route inside the largest component"
    assert straight <= route[0] < 2 * straight


def test_buildings_and_facilities_match_the_extract(osm_db, extract):
    engine, reports = osm_db
    raw = pyrosm.OSM(str(HELSINKI)).get_buildings(extra_attributes=["building:year"])
    skipped = reports["buildings"].skipped
    # Measured: pyrosm reads 486 buildings, 3 degenerate ones are reported as skipped, 483 loaded.
    assert scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE source = :s", s=SOURCE) \
        == len(extract.buildings) == len(raw) - len(skipped)
    assert len(skipped) > 0
    with engine.connect() as conn:
        db_codes = dict(conn.execute(text("SELECT type_code, count(*) FROM cdt.facilities GROUP BY 1")).all())
        db_ids = set(conn.execute(text("SELECT source_id FROM cdt.facilities")).scalars())
    assert db_codes == extract.facilities["type_code"].value_counts().to_dict()  # measured: 52 in 9 types
    assert db_ids == set(extract.facilities["osm_id"].astype(str))
    inside = scalar(engine, "SELECT count(*) FROM cdt.facilities f WHERE EXISTS "
                            "(SELECT 1 FROM cdt.buildings b WHERE ST_Intersects(b.geom, f.geom))")
    assert inside > 0  # measured: 41 of 52
    assert scalar(engine, "SELECT count(*) FROM cdt.facilities WHERE building_id IS NOT NULL") == inside
    assert scalar(engine, "SELECT count(*) FROM cdt.facilities f JOIN cdt.buildings b ON b.id = f.building_id "
                          "WHERE NOT ST_Intersects(b.geom, f.geom)") == 0


def test_report_lists_skipped_with_reasons(osm_db, extract):
    engine, reports = osm_db
    skipped = reports["buildings"].skipped
    assert skipped == extract.dropped["buildings"]
    assert all(re.fullmatch(r"way/\d+|relation/\d+", s["row"]) and "degenerate" in s["reason"] for s in skipped)
    # Skipped buildings are reported on the buildings report, not on another layer's, and are not loaded.
    assert not reports["facilities"].skipped and not reports["street_edges"].skipped
    ids = [s["row"].split("/")[1] for s in skipped]
    assert scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE source_id = ANY(:ids)", ids=ids) == 0
    recorded = scalar(engine, "SELECT report FROM cdt.ingest_runs WHERE kind = 'osm' AND layer = 'buildings' "
                              "ORDER BY id LIMIT 1")
    assert recorded["skipped"] == skipped and recorded["inserted"] == len(extract.buildings)


def test_reloading_changes_nothing(osm_db):
    engine, _ = osm_db
    before = table_fingerprints(engine)
    reports = load_osm(engine, HELSINKI, actor="test:again", skip_if_loaded=False)
    assert {r.layer for r in reports} == set(OSM_TABLES)
    for r in reports:
        assert (r.inserted, r.updated, r.deleted) == (0, 0, 0), r.summary()
        assert r.unchanged == scalar(engine, f"SELECT count(*) FROM cdt.{r.layer}")
    after = table_fingerprints(engine)
    assert [t for t in before if before[t] != after[t]] == ["ingest_runs"]  # only the run's own record
    for table in OSM_TABLES:
        assert scalar(engine, f"SELECT max(version) FROM cdt.{table}") == 1
    again = load_osm(engine, HELSINKI, actor="test:again", skip_if_loaded=True)
    assert all(r.already_loaded for r in again)


def test_cli_load_osm(make_database, extract):
    env = {"CDT_DATABASE_URL": make_database()}
    result = CliRunner().invoke(main, ["load", "osm", str(HELSINKI)], env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(rf"street_edges +{re.escape(SOURCE)}: \d{{4,}} loaded", out), out
    assert re.search(rf"street_nodes +{re.escape(SOURCE)}: \d{{4,}} loaded", out), out
    assert f"{SOURCE}: {len(extract.buildings)} loaded, 0 updated, 0 unchanged, " \
           f"{len(extract.dropped['buildings'])} skipped" in out
    assert f"{SOURCE}: {len(extract.facilities)} loaded" in out
    assert "building footprint is degenerate" in out
    # A misspelt layer is refused, not silently ignored.
    result = CliRunner().invoke(main, ["load", "osm", str(HELSINKI), "--layers", "street,buildings"], env=env)
    assert result.exit_code == 2 and "unknown OSM layer(s) street" in result.output


# --- Population raster --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pop_tif(tmp_path_factory) -> Path:
    """Derived from real data: Vologda buildings' `population` summed per 100 m cell (UTM 37N)."""
    buildings = gpd.read_parquet(Path(__file__).resolve().parents[1] / "data" / "vologda" / "buildings.parquet")
    return rasterize_population(buildings, "population", tmp_path_factory.mktemp("raster") / "pop.tif", 100)


@pytest.fixture(scope="module")
def raster_db(make_database, data_dir):
    """A fresh database with the Vologda territories and buildings, loaded as the demo does."""
    engine = engine_for(make_database())
    vologda = data_dir / "vologda"
    load_territories(engine, data_dir / "russia" / "cities.csv", [VOLOGDA], actor="test",
                     boundaries={VOLOGDA: vologda / "boundaries.parquet"})
    load_file(engine, vologda / "buildings.parquet", "buildings", actor="test", source="vologda/buildings",
              mapping=BUILDING_MAPPING, territory=VOLOGDA)
    yield engine
    engine.dispose()


def test_raster_into_territories(raster_db, pop_tif):
    engine = raster_db
    assert scalar(engine, "SELECT population FROM cdt.territories WHERE oktmo = :o", o=VOLOGDA) == 301_642
    report = load_raster(engine, pop_tif, "territories", actor="test")
    assert (report.updated, report.unchanged) == (1, 0)  # the region has no boundary, so only the okrug
    with engine.connect() as conn:
        row = conn.execute(text("SELECT population, population_source FROM cdt.territories WHERE oktmo = :o"),
                           {"o": VOLOGDA}).one()
    assert row.population == pytest.approx(TOTAL, abs=1)  # measured: 356,810 exactly
    assert "raster" in row.population_source and pop_tif.name in row.population_source
    again = load_raster(engine, pop_tif, "territories", actor="test", skip_if_loaded=False)
    assert (again.updated, again.unchanged) == (0, 1)


def test_raster_into_buildings(raster_db, pop_tif):
    engine = raster_db
    populated = scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE residents > 0")
    report = load_raster(engine, pop_tif, "buildings", actor="test", weight="living_area_m2")
    total = scalar(engine, "SELECT sum(residents) FROM cdt.buildings")
    changed = scalar(engine, "SELECT count(*) FROM cdt.buildings WHERE version > 1")
    print(f"residents after the raster: {total} ({total - TOTAL:+d} from rounding); "
          f"{report.updated} of {report.loaded} buildings changed; {populated} populated")
    # Every person lands in a building (the raster's cells and the split's cells agree) ...
    assert not report.warnings, report.warnings
    # ... and rounding to whole people keeps the total (largest-remainder rounding).
    assert total == TOTAL
    # Same residents back, except where living area splits a shared cell differently: measured 90 of 25,324.
    assert report.updated == changed
    assert 0 < changed < 0.01 * report.loaded
    assert report.loaded == 25_324


def test_bad_rasters_change_nothing(raster_db, pop_tif, tmp_path):
    engine = raster_db
    before = table_fingerprints(engine)
    truncated = tmp_path / "truncated.tif"
    data = pop_tif.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])  # the header opens, the strips are gone
    for into in ("territories", "buildings"):
        with pytest.raises(IngestError, match="cannot be read as a raster"):
            load_raster(engine, truncated, into, actor="test")
    with pytest.raises(IngestError, match="--into must be 'buildings' or 'territories'"):
        load_raster(engine, pop_tif, "parcels", actor="test")
    # The weight is a building field (living_area_m2), not the source file's column name.
    with pytest.raises(IngestError, match="no weight column 'living_area'.*living_area_m2"):
        load_raster(engine, pop_tif, "buildings", actor="test", weight="living_area")
    assert table_fingerprints(engine) == before
