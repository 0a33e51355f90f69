"""Every file loader on real files: Vologda subsets written as GeoPackage, GeoJSON, Shapefile,
GeoParquet and CSV, each loaded into a fresh database and checked against the source."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyproj
import pytest
import shapely
from sqlalchemy import text

from layers.db import engine_for
from layers.ingest.service import load_file
from tests.conftest import scalar

UTM = "EPSG:32637"  # the native CRS of data/vologda
MAPPING = {"floors": "n_floors", "living_area_m2": "living", "residents": "population", "is_living": "is_living"}
KEY = "bld_id"
GEOD = pyproj.Geod(ellps="WGS84")
FORMATS = ("gpkg", "geojson", "shp", "parquet", "csv")


@pytest.fixture(scope="module")
def buildings(data_dir) -> gpd.GeoDataFrame:
    """300 real buildings in EPSG:32637 (the first 299 and one of the two MultiPolygons), with
    column names a Shapefile keeps (<= 10 characters)."""
    src = gpd.read_parquet(data_dir / "vologda" / "buildings.parquet")
    picked = src.loc[[*range(299), 25319]]
    assert len(picked) == 300 and picked.crs.to_epsg() == 32637
    assert (picked.geom_type == "MultiPolygon").sum() == 1
    return gpd.GeoDataFrame({KEY: picked.index.to_numpy(), "n_floors": picked["number_of_floors"].to_numpy(),
                             "living": picked["living_area"].to_numpy(), "population": picked["population"].to_numpy(),
                             "is_living": picked["is_living"].to_numpy()},
                            geometry=picked.geometry.to_numpy(), crs=picked.crs)


@pytest.fixture(scope="module")
def schools(data_dir) -> gpd.GeoDataFrame:
    src = gpd.read_parquet(data_dir / "vologda" / "school.parquet")
    located = src[src.geometry.notna() & ~src.geometry.is_empty]
    assert len(located) == 42
    return located[["name", "address", "capacity", "geometry"]].reset_index(drop=True)


@pytest.fixture
def fresh(make_database):
    """A migrated empty database, so counts and versions are those of this test's loads only."""
    eng = engine_for(make_database())
    yield eng
    eng.dispose()


def write(gdf: gpd.GeoDataFrame, fmt: str, folder: Path) -> tuple[Path, str | None]:
    """`gdf` (in UTM) as a file of format `fmt`; returns the path and the --crs a CSV needs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"buildings.{fmt}"
    if fmt == "gpkg":
        gdf.to_file(path, layer="buildings", driver="GPKG")
    elif fmt == "geojson":  # RFC 7946: always WGS 84 longitude/latitude
        gdf.to_crs("EPSG:4326").to_file(path, driver="GeoJSON", RFC7946="YES")
    elif fmt == "shp":
        gdf.to_file(path)
    elif fmt == "parquet":
        gdf.to_parquet(path)
    elif fmt == "csv":  # a WKT column; a CSV cannot say its CRS
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        frame["wkt"] = shapely.to_wkt(gdf.geometry.values, rounding_precision=-1)
        frame.to_csv(path, index=False)
        return path, UTM
    return path, None


def centroid_offsets_m(engine, source: str, expected: gpd.GeoDataFrame) -> pd.Series:
    """Metres between each stored building's ST_Centroid and geopandas' centroid after to_crs(4326)."""
    wgs = expected.to_crs("EPSG:4326")
    want = pd.DataFrame({"x": shapely.get_x(shapely.centroid(wgs.geometry.values)),
                         "y": shapely.get_y(shapely.centroid(wgs.geometry.values))},
                        index=wgs[KEY].astype(str))
    with engine.connect() as conn:
        got = pd.DataFrame(conn.execute(text(
            "SELECT source_id, ST_X(ST_Centroid(geom)) AS x, ST_Y(ST_Centroid(geom)) AS y "
            "FROM cdt.buildings WHERE source = :s"), {"s": source}).all()).set_index("source_id")
    got = got.loc[want.index]
    _, _, dist = GEOD.inv(got["x"].to_numpy(), got["y"].to_numpy(), want["x"].to_numpy(), want["y"].to_numpy())
    return pd.Series(dist, index=want.index)


@pytest.mark.parametrize("fmt", FORMATS)
def test_buildings_load_reload_and_update(fmt, buildings, fresh, tmp_path):
    path, crs = write(buildings, fmt, tmp_path / "v1")
    source, actor = f"test/{fmt}", f"test:formats-{fmt}"
    n = len(buildings)

    report = load_file(fresh, path, "buildings", actor=actor, source=source, mapping=MAPPING, key=KEY, crs=crs)
    assert (report.inserted, report.updated, report.unchanged, report.skipped) == (n, 0, 0, [])
    assert scalar(fresh, "SELECT count(*) FROM cdt.buildings") == n
    assert scalar(fresh, "SELECT count(DISTINCT source_id) FROM cdt.buildings WHERE source = :s", s=source) == n
    assert scalar(fresh, "SELECT sum(residents) FROM cdt.buildings") == int(buildings["population"].sum()) == 15874
    assert scalar(fresh, "SELECT sum(floors) FROM cdt.buildings") == int(buildings["n_floors"].sum())
    assert scalar(fresh, "SELECT sum(living_area_m2) FROM cdt.buildings") == \
        pytest.approx(buildings["living"].sum(), rel=1e-9)
    assert scalar(fresh, "SELECT count(*) FROM cdt.buildings WHERE is_living") == int(buildings["is_living"].sum())
    assert scalar(fresh, "SELECT count(*) FROM cdt.buildings WHERE NOT ST_IsValid(geom) "
                         "OR GeometryType(geom) <> 'MULTIPOLYGON' OR ST_SRID(geom) <> 4326") == 0
    assert scalar(fresh, "SELECT ST_NumGeometries(geom) FROM cdt.buildings WHERE source_id = '25319'") == 2
    # Reprojected from UTM (or read as RFC 7946 lon/lat) to where geopandas puts the same buildings.
    offsets = centroid_offsets_m(fresh, source, buildings)
    assert len(offsets) == n and offsets.max() < 0.5
    # Geodesic footprints agree with the UTM areas (scale error of UTM here < 0.1%).
    assert scalar(fresh, "SELECT sum(footprint_m2) FROM cdt.buildings") / buildings.area.sum() == \
        pytest.approx(1.0, abs=0.002)
    assert scalar(fresh, "SELECT count(*) FROM cdt.history WHERE operation = 'INSERT' AND actor = :a", a=actor) == n

    # The same file again: nothing inserted or updated, no duplicates, no version bump.
    again = load_file(fresh, path, "buildings", actor=actor, source=source, mapping=MAPPING, key=KEY, crs=crs)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, n)
    assert scalar(fresh, "SELECT count(*) FROM cdt.buildings") == n
    assert scalar(fresh, "SELECT max(version) FROM cdt.buildings") == 1
    assert scalar(fresh, "SELECT count(*) FROM cdt.history WHERE operation = 'UPDATE'") == 0

    # One value changed in the file: exactly that row is updated, versioned and recorded.
    changed = buildings.copy()
    row = changed.index[changed[KEY] == 5][0]
    old_floors = int(changed.at[row, "n_floors"])
    changed.at[row, "n_floors"] = old_floors + 3
    path2, _ = write(changed, fmt, tmp_path / "v2")
    edit_actor = f"test:formats-{fmt}-edit"
    third = load_file(fresh, path2, "buildings", actor=edit_actor, source=source, mapping=MAPPING, key=KEY, crs=crs)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, n - 1)
    with fresh.connect() as conn:
        rows = conn.execute(text("SELECT source_id, version, floors, updated_by FROM cdt.buildings "
                                 "WHERE version > 1")).all()
        history = conn.execute(text(
            "SELECT h.actor, h.version, h.before, h.after FROM cdt.history h JOIN cdt.buildings b "
            "ON h.collection = 'buildings' AND h.feature_id = b.id::text "
            "WHERE h.operation = 'UPDATE' AND b.source_id = '5'")).all()
    assert [tuple(r) for r in rows] == [("5", 2, old_floors + 3, edit_actor)]
    assert len(history) == 1
    h = history[0]
    assert h.actor == edit_actor and h.version == 2
    assert (h.before["floors"], h.after["floors"]) == (old_floors, old_floors + 3)
    differing = {k for k in h.after if h.before.get(k) != h.after[k]}
    assert differing == {"floors", "version", "updated_at", "updated_by"}
    assert scalar(fresh, "SELECT count(*) FROM cdt.history WHERE operation = 'UPDATE'") == 1
    assert scalar(fresh, "SELECT count(*) FROM cdt.ingest_runs WHERE source = :s", s=source) == 3


def test_csv_with_lon_lat_columns(schools, fresh, tmp_path):
    wgs = schools.to_crs("EPSG:4326")
    path = tmp_path / "schools.csv"
    pd.DataFrame({"name": wgs["name"], "address": wgs["address"], "capacity": wgs["capacity"],
                  "lon": wgs.geometry.x.map(repr), "lat": wgs.geometry.y.map(repr)}).to_csv(path, index=False)
    report = load_file(fresh, path, "facilities", actor="test:csv", source="test/schools-csv", crs="EPSG:4326",
                       mapping={"name": "name", "capacity": "capacity"},
                       constants={"type_code": "school", "capacity_unit": "places"})
    assert (report.inserted, report.updated, report.unchanged) == (42, 0, 0)
    assert scalar(fresh, "SELECT count(*) FROM cdt.facilities WHERE type_code = 'school'") == 42
    assert scalar(fresh, "SELECT sum(capacity) FROM cdt.facilities") == schools["capacity"].sum() == 35600
    assert scalar(fresh, "SELECT count(DISTINCT capacity_unit) FROM cdt.facilities") == 1
    # The first school is where geopandas puts it (to the centimetre: repr keeps every digit).
    first = wgs.geometry.iloc[0]
    dist = scalar(fresh, "SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography) "
                         "FROM cdt.facilities WHERE source_id = '0'", x=first.x, y=first.y)
    assert dist < 0.01
    assert scalar(fresh, "SELECT name FROM cdt.facilities WHERE source_id = '0'") == schools["name"].iloc[0]


def test_csv_lon_lat_in_utm_reprojected(schools, fresh, tmp_path):
    """Columns named x/y carrying UTM metres, declared with --crs EPSG:32637."""
    path = tmp_path / "schools_utm.csv"
    pd.DataFrame({"name": schools["name"], "x": schools.geometry.x.map(repr),
                  "y": schools.geometry.y.map(repr)}).to_csv(path, index=False)
    load_file(fresh, path, "facilities", actor="test:csv", source="test/schools-utm", crs=UTM,
              constants={"type_code": "school"})
    lonlat = schools.to_crs("EPSG:4326").geometry
    with fresh.connect() as conn:
        got = conn.execute(text("SELECT source_id::int AS i, ST_X(geom) AS x, ST_Y(geom) AS y "
                                "FROM cdt.facilities ORDER BY 1")).all()
    assert len(got) == 42
    _, _, dist = GEOD.inv([r.x for r in got], [r.y for r in got], lonlat.x.to_numpy(), lonlat.y.to_numpy())
    assert max(dist) < 0.01


def test_facility_linked_to_the_building_it_stands_in(buildings, fresh, tmp_path):
    path, _ = write(buildings, "gpkg", tmp_path)
    load_file(fresh, path, "buildings", actor="test:link", source="test/link-buildings", mapping=MAPPING, key=KEY)
    with fresh.connect() as conn:
        building_id, x, y = conn.execute(text(
            "SELECT id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM cdt.buildings "
            "WHERE source_id = '42'")).one()
    # One school inside that building, one in open country 30 km away.
    points = gpd.GeoDataFrame({"name": ["inside", "outside"], "ref": ["s1", "s2"]},
                              geometry=[shapely.Point(x, y), shapely.Point(x + 0.5, y + 0.1)], crs="EPSG:4326")
    gj = tmp_path / "schools.geojson"
    points.to_file(gj, driver="GeoJSON", RFC7946="YES")
    report = load_file(fresh, gj, "facilities", actor="test:link", source="test/link-schools", key="ref",
                       constants={"type_code": "school"})
    assert report.inserted == 2
    with fresh.connect() as conn:
        links = dict(conn.execute(text("SELECT name, building_id FROM cdt.facilities")).all())
        types = conn.execute(text("SELECT DISTINCT type_code FROM cdt.facilities")).scalars().all()
    assert links == {"inside": building_id, "outside": None}
    assert types == ["school"]


def test_geopackage_layer_chosen_by_file_layer(buildings, schools, fresh, tmp_path):
    path = tmp_path / "city.gpkg"
    buildings.to_file(path, layer="buildings", driver="GPKG")
    schools.to_file(path, layer="schools", driver="GPKG")
    assert sorted(name for name, _ in gpd.list_layers(path).to_numpy()) == ["buildings", "schools"]

    facilities = load_file(fresh, path, "facilities", actor="test:gpkg", source="test/gpkg-schools",
                           file_layer="schools", mapping={"name": "name", "capacity": "capacity"},
                           constants={"type_code": "school"})
    houses = load_file(fresh, path, "buildings", actor="test:gpkg", source="test/gpkg-buildings",
                       file_layer="buildings", mapping=MAPPING, key=KEY)
    assert (facilities.inserted, houses.inserted) == (42, 300)
    assert scalar(fresh, "SELECT count(*) FROM cdt.facilities") == 42
    assert scalar(fresh, "SELECT sum(capacity) FROM cdt.facilities") == 35600
    assert scalar(fresh, "SELECT count(*) FROM cdt.buildings") == 300
    assert scalar(fresh, "SELECT sum(residents) FROM cdt.buildings") == 15874
    # A school standing in one of the loaded buildings is linked to it.
    assert scalar(fresh, "SELECT count(*) FROM cdt.facilities f JOIN cdt.buildings b ON b.id = f.building_id "
                         "WHERE NOT ST_Intersects(b.geom, f.geom)") == 0


def test_csv_row_without_coordinates_is_skipped(schools, fresh, tmp_path):
    """A row with blank lon/lat has no geometry: skipped and reported, like a null geometry in any format."""
    wgs = schools.to_crs("EPSG:4326")
    frame = pd.DataFrame({"name": wgs["name"], "lon": wgs.geometry.x.map(repr), "lat": wgs.geometry.y.map(repr)})
    frame.loc[7, ["lon", "lat"]] = ""
    path = tmp_path / "gaps.csv"
    frame.to_csv(path, index=False)
    report = load_file(fresh, path, "facilities", actor="test:csv", source="test/gaps", crs="EPSG:4326",
                       constants={"type_code": "school"})
    assert report.inserted == 41
    assert report.skipped == [{"row": f"7 ({schools['name'][7]})", "reason": "no geometry"}]
    assert scalar(fresh, "SELECT count(*) FROM cdt.facilities WHERE source_id = '7'") == 0


def test_single_point_multipoints_load_as_points(schools, fresh, tmp_path):
    """A MultiPoint layer (common in GeoPackage exports) whose features have one point each."""
    multi = schools.copy()
    multi["geometry"] = [shapely.MultiPoint([p]) for p in schools.geometry]
    path = tmp_path / "multi.gpkg"
    multi.to_file(path, layer="schools")
    assert set(gpd.read_file(path).geom_type) == {"MultiPoint"}
    report = load_file(fresh, path, "facilities", actor="test:multi", source="test/multi",
                       constants={"type_code": "school"})
    assert report.inserted == 42
    assert scalar(fresh, "SELECT count(*) FROM cdt.facilities WHERE GeometryType(geom) = 'POINT'") == 42


def test_flag_column_with_gaps(buildings, fresh, tmp_path):
    """A 0/1 column with empty cells is read as floats (1.0, 0.0, NaN); it is still a true/false flag."""
    frame = buildings.copy()
    flags = frame["is_living"].astype(int).astype("Int64")
    flags[frame[KEY] % 10 == 0] = pd.NA
    frame["is_living"] = flags
    path = tmp_path / "flags.gpkg"
    frame.to_file(path)
    assert gpd.read_file(path)["is_living"].dtype == "float64"
    load_file(fresh, path, "buildings", actor="test:flags", source="test/flags", mapping=MAPPING, key=KEY)
    with fresh.connect() as conn:
        counts = dict(conn.execute(text("SELECT coalesce(is_living::text, 'null'), count(*) FROM cdt.buildings "
                                        "GROUP BY 1")).all())
    assert counts == {"true": int((flags == 1).sum()), "false": int((flags == 0).sum()),
                      "null": int(flags.isna().sum())}
    assert counts["true"] > 0 and counts["null"] > 0


@pytest.mark.parametrize("fmt", ["gpkg", "parquet"])
def test_list_fields_from_text_and_from_lists(fmt, buildings, fresh, tmp_path):
    """Zoning uses: comma-separated text (GeoPackage) or real lists (GeoParquet); an empty cell is no list."""
    uses = [["2.1", "3.5.1"], None, ['odd "quoted" \\ code']]
    zones = gpd.GeoDataFrame({"zone_code": ["Ж-1", "Ж-2", "П-1"], "max_floors": [5, None, 2]},
                             geometry=buildings.geometry.iloc[:3].buffer(50).to_numpy(), crs=buildings.crs)
    path = tmp_path / f"zones.{fmt}"
    if fmt == "gpkg":
        zones["main_uses"] = [None if u is None else ", ".join(u) for u in uses]
        zones.to_file(path)
    else:
        zones["main_uses"] = pd.Series(uses, dtype=object)
        zones.to_parquet(path)
    report = load_file(fresh, path, "zoning_zones", actor="test:zones", source=f"test/zones-{fmt}")
    assert report.inserted == 3
    with fresh.connect() as conn:
        got = dict(conn.execute(text("SELECT zone_code, main_uses FROM cdt.zoning_zones")).all())
        floors = dict(conn.execute(text("SELECT zone_code, max_floors FROM cdt.zoning_zones")).all())
    assert got == {"Ж-1": ["2.1", "3.5.1"], "Ж-2": None, "П-1": ['odd "quoted" \\ code']}
    assert floors == {"Ж-1": 5, "Ж-2": None, "П-1": 2}


def test_shapefile_fingerprint_covers_sidecars(tmp_path):
    """Editing only the .dbf (attributes) of a shapefile must make it a different file for skip-if-loaded."""
    from layers.ingest.service import fingerprint

    shp = tmp_path / "a.shp"
    for ext, body in ((".shp", b"geom"), (".dbf", b"attrs-v1"), (".prj", b"GEOGCS")):
        shp.with_suffix(ext).write_bytes(body)
    before = fingerprint([shp])
    shp.with_suffix(".dbf").write_bytes(b"attrs-v2")
    assert fingerprint([shp]) != before
