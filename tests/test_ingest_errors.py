"""Bad input is refused with a clear IngestError naming what is wrong, and the database is left
exactly as it was (the `unchanged` fixture fingerprints every CDT table of the session database)."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from layers.db import engine_for
from layers.errors import IngestError, NotFound
from layers.ingest.service import load_file, load_kpt
from layers.ingest.vector import read_vector
from tests.conftest import scalar, table_fingerprints

UTM = "EPSG:32637"
MAPPING = {"floors": "n_floors", "residents": "population"}
KEY = "bld_id"
EKB_KPT = "kpt10_66-41-0302032.xml"
NOVOCHEB_KPT = ("kpt10_21-02-010106.xml", "kpt10_21-02-010107.xml")
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


@pytest.fixture(scope="module")
def buildings(data_dir) -> gpd.GeoDataFrame:
    """20 real buildings in EPSG:32637."""
    src = gpd.read_parquet(data_dir / "vologda" / "buildings.parquet").iloc[:20]
    return gpd.GeoDataFrame({KEY: src.index.to_numpy(), "n_floors": src["number_of_floors"].to_numpy(),
                             "population": src["population"].to_numpy()}, geometry=src.geometry.to_numpy(),
                            crs=src.crs)


def to_csv(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    """A CSV with a WKT column (and so no CRS)."""
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    frame["wkt"] = shapely.to_wkt(gdf.geometry.values, rounding_precision=-1)
    frame.to_csv(path, index=False)
    return path


def load(engine, path, layer="buildings", **kw):
    kw.setdefault("mapping", MAPPING)
    return load_file(engine, path, layer, actor="test:errors", source=f"test/errors/{Path(path).name}", **kw)


def refused(call, *words: str) -> IngestError:
    """Run `call`, expect an IngestError whose message holds every one of `words`."""
    with pytest.raises(IngestError) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"
    return info.value


# --- coordinate reference systems --------------------------------------------------------------------


def test_shapefile_without_prj_needs_crs(engine, unchanged, buildings, tmp_path, make_database):
    path = tmp_path / "noprj.shp"
    buildings.to_file(path)
    path.with_suffix(".prj").unlink()
    refused(lambda: load(engine, path, key=KEY), "noprj.shp", "declares no coordinate reference system", "--crs")

    fresh = engine_for(make_database())
    report = load(fresh, path, key=KEY, crs=UTM)
    assert report.inserted == 20
    assert scalar(fresh, "SELECT sum(residents) FROM cdt.buildings") == int(buildings["population"].sum())
    # Declared as UTM, the buildings land in Vologda (39.9 E, 59.2 N), not off the map.
    lon, lat = scalar(fresh, "SELECT ARRAY[ST_X(c), ST_Y(c)] FROM (SELECT ST_Centroid(ST_Collect(geom)) c "
                             "FROM cdt.buildings) x")
    assert 39.7 < lon < 40.1 and 59.1 < lat < 59.3
    fresh.dispose()


def test_csv_without_crs_needs_crs(engine, unchanged, buildings, tmp_path, make_database):
    path = to_csv(buildings, tmp_path / "nocrs.csv")
    refused(lambda: load(engine, path, key=KEY), "nocrs.csv", "declares no coordinate reference system", "--crs")

    fresh = engine_for(make_database())
    assert load(fresh, path, key=KEY, crs=UTM).inserted == 20
    assert scalar(fresh, "SELECT count(*) FROM cdt.buildings WHERE ST_Y(ST_Centroid(geom)) BETWEEN 59.1 AND 59.3") == 20
    fresh.dispose()


@pytest.mark.parametrize("fmt, declared, given", [
    ("gpkg", "EPSG:32637", "EPSG:4326"),
    ("parquet", "EPSG:32637", "EPSG:32638"),
    ("shp", "EPSG:32637", "EPSG:3857"),
    ("geojson", "EPSG:4326", "EPSG:32637"),
])
def test_crs_contradicting_the_file_is_refused(engine, unchanged, buildings, tmp_path, fmt, declared, given):
    path = tmp_path / f"b.{fmt}"
    if fmt == "parquet":
        buildings.to_parquet(path)
    else:
        buildings.to_crs(declared).to_file(path)
    refused(lambda: load(engine, path, key=KEY, crs=given), path.name, f"declares {declared}",
            f"differs from --crs {given}")
    # The CRS the file does declare is accepted.
    assert len(read_vector(path, crs=declared)) == 20


def test_unknown_crs_is_refused(engine, unchanged, buildings, tmp_path):
    path = to_csv(buildings, tmp_path / "b.csv")
    refused(lambda: load(engine, path, key=KEY, crs="EPSG:99999999"), "Unknown CRS", "EPSG:99999999")


# --- geometries --------------------------------------------------------------------------------------


def with_bow_tie(buildings: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    x, y = buildings.geometry.iloc[0].centroid.coords[0]
    bow_tie = shapely.Polygon([(x + 500, y), (x + 520, y + 20), (x + 520, y), (x + 500, y + 20)])
    assert not bow_tie.is_valid
    extra = gpd.GeoDataFrame({KEY: [9999], "n_floors": [3.0], "population": [12]}, geometry=[bow_tie],
                             crs=buildings.crs)
    return pd.concat([buildings, extra], ignore_index=True)


def test_self_intersecting_polygon_refused_then_repaired(engine, unchanged, buildings, tmp_path, make_database):
    path = tmp_path / "bowtie.gpkg"
    with_bow_tie(buildings).to_file(path)
    err = refused(lambda: load(engine, path, key=KEY), "1 feature(s) with bad geometry", "nothing was loaded",
                  "--repair")
    assert len(err.problems) == 1
    assert err.problems[0]["row"] == "9999"
    assert err.problems[0]["reason"].startswith("invalid geometry: Self-intersection")

    fresh = engine_for(make_database())
    report = load(fresh, path, key=KEY, repair=True)
    assert report.inserted == 21
    assert [w["row"] for w in report.warnings] == ["9999"]
    assert "repaired" in report.warnings[0]["reason"] and "Self-intersection" in report.warnings[0]["reason"]
    assert scalar(fresh, "SELECT count(*) FROM cdt.buildings WHERE NOT ST_IsValid(geom)") == 0
    # The bow-tie became its two triangles, 200 m² in all.
    assert scalar(fresh, "SELECT ST_NumGeometries(geom) FROM cdt.buildings WHERE source_id = '9999'") == 2
    assert scalar(fresh, "SELECT footprint_m2 FROM cdt.buildings WHERE source_id = '9999'") == \
        pytest.approx(200, rel=0.01)
    fresh.dispose()


def test_points_into_buildings_are_refused(engine, unchanged, data_dir, tmp_path):
    schools = gpd.read_parquet(data_dir / "vologda" / "school.parquet")
    schools = schools[schools.geometry.notna()].reset_index(drop=True)
    path = tmp_path / "schools.gpkg"
    schools.to_file(path)
    err = refused(lambda: load(engine, path, mapping={}), f"{len(schools)} feature(s) with bad geometry")
    assert len(err.problems) == len(schools) == 42
    assert {p["row"] for p in err.problems} == {str(i) for i in range(42)}
    assert all(p["reason"] == "Point where layer 'buildings' stores MULTIPOLYGON" for p in err.problems)


def test_multipoint_with_several_parts_is_refused(engine, unchanged, tmp_path):
    points = gpd.GeoDataFrame({"name": ["twin"]}, geometry=[shapely.MultiPoint([(39.90, 59.22), (39.91, 59.22)])],
                              crs="EPSG:4326")
    path = tmp_path / "twin.geojson"
    points.to_file(path)
    err = refused(lambda: load(engine, path, "facilities", mapping={}, constants={"type_code": "school"}),
                  "1 feature(s) with bad geometry")
    assert err.problems == [{"row": "0 (twin)", "reason": "MultiPoint with several disjoint parts where layer "
                                                            "'facilities' stores single POINTs"}]


# --- cadastre ----------------------------------------------------------------------------------------


def test_kpt_with_invalid_cadastral_number(engine, unchanged, data_dir, tmp_path, make_database):
    text = (data_dir / "cadastre" / EKB_KPT).read_text(encoding="utf-8")
    assert text.count('CadastralNumber="66:41:0302032:1"') == 1
    path = tmp_path / EKB_KPT
    path.write_text(text.replace('CadastralNumber="66:41:0302032:1"', 'CadastralNumber="66:41:BAD:1"'),
                    encoding="utf-8")
    err = refused(lambda: load_kpt(engine, [path], actor="test:errors"), EKB_KPT,
                  "1 parcel(s) with an invalid cadastral number", "nothing was loaded")
    assert err.problems == [{"row": "66:41:BAD:1", "reason": "invalid cadastral number '66:41:BAD:1'"}]

    fresh = engine_for(make_database())
    refused(lambda: load_kpt(fresh, [path], actor="test:errors"), "invalid cadastral number")
    assert scalar(fresh, "SELECT count(*) FROM cdt.parcels") == 0
    assert scalar(fresh, "SELECT count(*) FROM cdt.ingest_runs") == 0
    fresh.dispose()


# --- truncated and missing files ----------------------------------------------------------------------


def half(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.mark.parametrize("fmt, words", [
    ("gpkg", ("cannot be read as a vector file",)),
    ("parquet", ("cannot be read as a vector file",)),
    ("geojson", ("cannot be read as a vector file",)),
    ("shp", ("truncated", "nothing was loaded")),
])
def test_truncated_vector_file(engine, unchanged, buildings, tmp_path, fmt, words):
    whole = tmp_path / "whole" / f"b.{fmt}"
    whole.parent.mkdir()
    if fmt == "parquet":
        buildings.to_parquet(whole)
    else:
        buildings.to_file(whole)
    cut = tmp_path / f"cut.{fmt}"
    half(whole, cut)
    if fmt == "shp":  # only the geometry file is cut; index, attributes and .prj are whole
        for part in SHAPEFILE_PARTS[1:]:
            shutil.copy(whole.with_suffix(part), cut.with_suffix(part))
    assert len(read_vector(whole)) == 20
    refused(lambda: load(engine, cut, key=KEY), cut.name, *words)


def test_truncated_kpt(engine, unchanged, data_dir, tmp_path):
    cut = half(data_dir / "cadastre" / EKB_KPT, tmp_path / EKB_KPT)
    refused(lambda: load_kpt(engine, [cut], actor="test:errors"), EKB_KPT, "not a readable XML file")


def test_missing_file(engine, unchanged, tmp_path):
    refused(lambda: load(engine, tmp_path / "nowhere.gpkg"), "nowhere.gpkg", "no such file")
    refused(lambda: load_kpt(engine, [tmp_path / "nowhere.xml"], actor="test:errors"), "nowhere.xml",
            "no such file")


# --- mapping and values -------------------------------------------------------------------------------


def test_unknown_column_in_mapping_lists_the_file_columns(engine, unchanged, buildings, tmp_path):
    path = tmp_path / "b.gpkg"
    buildings.to_file(path)
    refused(lambda: load(engine, path, key=KEY, mapping={"floors": "no_such_column"}),
            "no_such_column not in the file", "its columns are: bld_id, n_floors, population")
    refused(lambda: load(engine, path, key="no_such_key"), "no_such_key not in the file", "n_floors")


def test_unknown_layer_field_lists_the_layer_fields(engine, unchanged, buildings, tmp_path):
    path = tmp_path / "b.gpkg"
    buildings.to_file(path)
    err = refused(lambda: load(engine, path, key=KEY, mapping={"no_such_field": "population"}),
                  "layer 'buildings' has no field(s) no_such_field", "its fields are:")
    listed = str(err).split("its fields are:")[1]
    assert {"floors", "residents", "living_area_m2", "is_living"} <= {f.strip() for f in listed.split(",")}
    refused(lambda: load(engine, path, key=KEY, mapping={}, constants={"no_such_field": 1}), "no_such_field")


def test_unknown_layer_name(engine, unchanged, buildings, tmp_path):
    path = tmp_path / "b.gpkg"
    buildings.to_file(path)
    with pytest.raises(NotFound) as info:
        load(engine, path, "no_such_layer")
    assert "Unknown layer 'no_such_layer'" in str(info.value) and "buildings" in str(info.value)
    assert info.value.status == 404


def test_unknown_layer_inside_a_geopackage(engine, unchanged, buildings, tmp_path):
    path = tmp_path / "b.gpkg"
    buildings.to_file(path, layer="houses")
    refused(lambda: load(engine, path, key=KEY, file_layer="no_such_layer"), "b.gpkg", "no_such_layer")


def test_values_of_the_wrong_type_are_named_by_row(engine, unchanged, buildings, tmp_path):
    frame = buildings.copy()
    frame[["n_floors", "population"]] = frame[["n_floors", "population"]].astype(object)
    frame["is_living"] = "yes"
    frame.loc[frame[KEY] == 7, "n_floors"] = "three"
    frame.loc[frame[KEY] == 11, "n_floors"] = "2.5"
    frame.loc[frame[KEY] == 13, "population"] = "many"
    frame.loc[frame[KEY] == 15, "is_living"] = "perhaps"
    path = to_csv(frame, tmp_path / "typed.csv")
    err = refused(lambda: load(engine, path, key=KEY, crs=UTM,
                               mapping={**MAPPING, "is_living": "is_living"}), "4 value(s) of the wrong type")
    assert sorted(err.problems, key=lambda p: int(p["row"])) == [
        {"row": "7", "reason": "floors: 'three' is not a number"},
        {"row": "11", "reason": "floors: '2.5' is not a whole number"},
        {"row": "13", "reason": "residents: 'many' is not a number"},
        {"row": "15", "reason": "is_living: 'perhaps' is not true/false"},
    ]


def test_duplicate_keys_are_refused(engine, unchanged, buildings, tmp_path):
    frame = buildings.copy()
    frame.loc[frame[KEY] == 3, KEY] = 4
    path = tmp_path / "dup.gpkg"
    frame.to_file(path)
    err = refused(lambda: load(engine, path, key=KEY), "2 feature(s) share a key", "keys must be unique")
    assert err.problems == [{"row": "4", "reason": "duplicate key"}] * 2


def test_empty_keys_are_refused(engine, unchanged, buildings, tmp_path):
    frame = buildings.copy()
    frame[KEY] = frame[KEY].astype(object)
    frame.loc[frame[KEY] == 5, KEY] = None
    path = to_csv(frame, tmp_path / "nokey.csv")
    err = refused(lambda: load(engine, path, key=KEY, crs=UTM), "1 feature(s) without a key (source_id)")
    assert err.problems == [{"row": 5, "reason": "empty key"}]


def test_unreadable_wkt_names_the_line(engine, unchanged, buildings, tmp_path):
    path = to_csv(buildings, tmp_path / "wkt.csv")
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("POLYGON ((", "POLYGON ((oops ")
    path.write_text("\n".join(lines) + "\n")
    err = refused(lambda: load(engine, path, key=KEY, crs=UTM), "wkt.csv", "1 row(s) with unreadable WKT")
    assert [p["row"] for p in err.problems] == [4]  # the file's line 4 (line 1 is the header)
    assert err.problems[0]["reason"].startswith("unreadable WKT")


def test_csv_without_geometry_lists_its_columns(engine, unchanged, tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("name,floors\nA,3\n")
    refused(lambda: load(engine, path, crs=UTM, mapping={}), "plain.csv", "no geometry", "found name, floors")


def test_non_numeric_coordinates_name_the_line(engine, unchanged, tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("name,lon,lat\nA,39.9,59.2\nB,east,59.2\n")
    err = refused(lambda: load(engine, path, "facilities", crs="EPSG:4326", mapping={},
                               constants={"type_code": "school"}), "1 row(s) with non-numeric coordinates")
    assert err.problems == [{"row": 3, "reason": "longitude/latitude not numeric"}]


# --- the database refuses; failures in the middle of a load ---------------------------------------------


def test_value_breaking_a_constraint_rolls_back(engine, unchanged, buildings, tmp_path):
    frame = buildings.copy()
    frame.loc[frame[KEY] == 9, "n_floors"] = 500
    path = tmp_path / "tall.gpkg"
    frame.to_file(path)
    refused(lambda: load(engine, path, key=KEY), "the database refused the data for layer 'buildings'",
            "ck_buildings_floors")


def test_unknown_facility_type_rolls_back(engine, unchanged, tmp_path):
    # Points inside Vologda buildings, so the staged rows are linked to buildings before the insert fails.
    x, y = scalar(engine, "SELECT ARRAY[ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom))] "
                          "FROM cdt.buildings ORDER BY id LIMIT 1")
    points = gpd.GeoDataFrame({"name": ["A"]}, geometry=[shapely.Point(x, y)], crs="EPSG:4326")
    path = tmp_path / "odd.geojson"
    points.to_file(path)
    refused(lambda: load(engine, path, "facilities", mapping={}, constants={"type_code": "no_such_type"}),
            "the database refused the data for layer 'facilities'", "no_such_type")
    refused(lambda: load(engine, path, "facilities", mapping={}), "the database refused", "type_code")


def test_second_kpt_file_broken_leaves_the_first_unloaded(engine, unchanged, data_dir, tmp_path, make_database):
    good = data_dir / "cadastre" / NOVOCHEB_KPT[0]
    cut = half(data_dir / "cadastre" / NOVOCHEB_KPT[1], tmp_path / NOVOCHEB_KPT[1])
    fresh = engine_for(make_database())
    for eng in (fresh, engine):
        refused(lambda eng=eng: load_kpt(eng, [good, cut], actor="test:errors"), NOVOCHEB_KPT[1],
                "not a readable XML file")
    assert scalar(fresh, "SELECT count(*) FROM cdt.parcels") == 0
    assert scalar(fresh, "SELECT count(*) FROM cdt.ingest_runs") == 0
    # The first file alone is fine: what stopped the load was the second.
    assert load_kpt(fresh, [good], actor="test:errors").inserted > 0
    fresh.dispose()


def test_unknown_territory_fails_after_staging_and_leaves_nothing(engine, unchanged, data_dir, make_database):
    paths = [data_dir / "cadastre" / name for name in NOVOCHEB_KPT]
    fresh = engine_for(make_database())
    before = table_fingerprints(fresh)
    for eng in (fresh, engine):
        refused(lambda eng=eng: load_kpt(eng, paths, actor="test:errors", territory="00000000"),
                "--territory 00000000", "no such territory")
    assert scalar(fresh, "SELECT count(*) FROM cdt.parcels") == 0
    assert table_fingerprints(fresh) == before
    fresh.dispose()


def test_street_lines_with_a_non_numeric_speed_are_refused(engine, unchanged, tmp_path, data_dir):
    roads = gpd.read_parquet(data_dir / "vologda" / "roads.parquet").iloc[:5].copy()
    roads = gpd.GeoDataFrame({"maxspeed": ["40", "fast", "60", "60", "60"]}, geometry=roads.geometry.values,
                             crs=roads.crs)
    path = tmp_path / "roads.geojson"
    roads.to_file(path)
    err = refused(lambda: load(engine, path, "street_edges", mapping={"speed_kmh": "maxspeed"}),
                  "wrong type")
    assert any("'fast' is not a number" in p["reason"] for p in err.problems)
