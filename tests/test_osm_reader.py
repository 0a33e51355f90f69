"""OSM PBF reader on pyrosm's bundled extracts (Helsinki centre, a Finnish suburb); no database."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pyrosm
import pytest

from layers.errors import IngestError
from layers.ingest import osm
from layers.ingest.osm import FACILITY_TAGS, OsmExtract, read_osm

DATA = Path(pyrosm.__file__).parent / "data"
HELSINKI = DATA / "Helsinki.osm.pbf"
TEST_PBF = DATA / "test.osm.pbf"
CODES = {"school", "kindergarten", "polyclinic", "hospital", "pharmacy", "sports", "culture",
         "boiler_house", "substation", "library", "university", "college"}


@pytest.fixture(scope="module")
def helsinki() -> OsmExtract:
    stages: list[str] = []
    t0 = time.perf_counter()
    ext = read_osm(HELSINKI, progress=stages.append)
    print(f"read_osm(Helsinki) took {time.perf_counter() - t0:.2f} s")
    assert stages and stages[0].startswith("checking")
    return ext


@pytest.fixture(scope="module")
def suburb() -> OsmExtract:
    return read_osm(TEST_PBF)


def test_facility_tags_map_to_cdt_codes():
    assert set(FACILITY_TAGS.values()) <= CODES
    assert all(k.count("=") == 1 for k in FACILITY_TAGS)
    assert FACILITY_TAGS["amenity=doctors"] == "polyclinic"
    assert FACILITY_TAGS["leisure=stadium"] == "sports"


def test_streets(helsinki: OsmExtract):
    s = helsinki.streets
    assert len(s) > 1000
    assert s.crs.to_epsg() == 4326
    assert set(s.geom_type) == {"LineString"}
    x0, y0, x1, y1 = s.total_bounds
    assert 24.9 < x0 < x1 < 25.0 and 60.15 < y0 < y1 < 60.19
    assert s["osm_id"].dtype == "int64" and (s["osm_id"] > 0).all()
    for col in ("walk", "drive", "oneway"):
        assert s[col].dtype == bool
    walk_only, drive_only = s.walk & ~s.drive, s.drive & ~s.walk
    print(f"edges={len(s)} walk={s.walk.sum()} drive={s.drive.sum()} "
          f"walk_only={walk_only.sum()} drive_only={drive_only.sum()}")
    assert walk_only.sum() > 100 and drive_only.sum() > 0
    assert s.loc[s.highway == "footway", "drive"].eq(False).all()
    steps = s[s.highway == "steps"]
    assert len(steps) > 100 and not steps.drive.any()
    assert 0 < (~steps.walk).sum() < 5  # the few access=private stairs are closed to walkers
    # speed: tagged where drivable, NaN where not; Helsinki tags 30/40 km/h widely
    assert s.loc[s.drive, "speed_kmh"].notna().all() and s.loc[~s.drive, "speed_kmh"].isna().all()
    assert {30.0, 40.0} <= set(s.speed_kmh.dropna())
    assert s.oneway.sum() > 100
    assert s["name"].notna().sum() > 500


def test_access_tags_close_modes(helsinki: OsmExtract, suburb: OsmExtract):
    s = suburb.streets
    # test.osm.pbf has motorways: drive only, 110 km/h by default
    mw = s[s.highway == "motorway"]
    assert len(mw) > 0 and mw.drive.all() and not mw.walk.any() and mw.oneway.all()
    assert (mw.speed_kmh == 110).all()
    residential = s[(s.highway == "residential") & s.drive]
    assert len(residential) > 0
    # untagged residential streets default to 20 km/h
    assert 20.0 in set(residential.speed_kmh)
    # Helsinki: neither-mode ways exist (access=private etc.) and are kept
    h = helsinki.streets
    assert (~h.walk & ~h.drive).sum() > 0


def test_buildings(helsinki: OsmExtract):
    b = helsinki.buildings
    assert len(b) > 400
    assert b.crs.to_epsg() == 4326
    assert set(b.geom_type) <= {"Polygon", "MultiPolygon"} and b.is_valid.all()
    assert str(b.floors.dtype) == "Int64" and str(b.year.dtype) == "Int64"
    assert b.floors.notna().sum() > 100 and (b.floors.dropna() > 0).all()
    assert b.year.notna().sum() > 50 and b.year.dropna().between(1000, 2100).all()
    assert "yes" not in set(b.use.dropna()) and "apartments" in set(b.use)
    assert b.use.isna().sum() > 100  # building=yes -> None
    assert b.address.notna().sum() > 50
    ateneum = b[b.address == "Kaivokatu, 2"]
    assert len(ateneum) >= 1 and 1887 in set(ateneum.year.dropna())


def test_facilities(helsinki: OsmExtract, suburb: OsmExtract):
    f = helsinki.facilities
    counts = f.type_code.value_counts().to_dict()
    print(f"Helsinki facilities: {counts}; test.osm.pbf: {suburb.facilities.type_code.value_counts().to_dict()}")
    assert set(f.geom_type) == {"Point"} and f.crs.to_epsg() == 4326
    assert set(counts) <= CODES and len(counts) >= 5
    assert counts.get("school", 0) > 0
    assert {"node", "way"} <= set(f.osm_type)
    assert f.name.notna().sum() > len(f) / 2
    x0, y0, x1, y1 = f.total_bounds
    assert 24.9 < x0 < x1 < 25.0 and 60.15 < y0 < y1 < 60.19
    assert f.capacity.dtype == float
    kinder = suburb.facilities[suburb.facilities.type_code == "kindergarten"]
    assert len(kinder) > 0 and set(kinder.geom_type) == {"Point"}


def test_skipped_rows_are_labelled(helsinki: OsmExtract):
    assert isinstance(helsinki.skipped, list)
    for item in helsinki.skipped:
        assert set(item) == {"row", "reason"}
        assert item["row"].split("/")[0] in {"node", "way", "relation"} and item["reason"]


def test_bbox_limits_the_extract(helsinki: OsmExtract):
    box = (24.94, 60.165, 24.95, 60.172)
    part = read_osm(HELSINKI, bbox=box)
    assert 0 < len(part.streets) < len(helsinki.streets)
    x0, y0, x1, y1 = part.streets.total_bounds
    assert x0 > 24.93 and x1 < 24.96 and y0 > 60.16 and y1 < 60.18


def test_bbox_without_data_is_an_ingest_error():
    with pytest.raises(IngestError, match="no streets"):
        read_osm(HELSINKI, bbox=(30.0, 59.9, 30.1, 60.0))


@pytest.mark.parametrize("bbox", [(25.0, 60.0, 24.0, 61.0), (1, 2, 3), ("a", 1, 2, 3)])
def test_bad_bbox_is_an_ingest_error(bbox):
    with pytest.raises(IngestError, match="bbox"):
        read_osm(HELSINKI, bbox=bbox)


def test_missing_file_is_an_ingest_error(tmp_path: Path):
    with pytest.raises(IngestError, match="not found") as err:
        read_osm(tmp_path / "nowhere.osm.pbf")
    assert err.value.status == 422


@pytest.mark.parametrize("cut", [1000, 300_000, -10])
def test_truncated_file_is_an_ingest_error(tmp_path: Path, cut: int):
    bad = tmp_path / "cut.osm.pbf"
    bad.write_bytes(HELSINKI.read_bytes()[:cut])
    with pytest.raises(IngestError, match="truncated"):
        read_osm(bad)


@pytest.mark.parametrize("content", [b"", b"<?xml version='1.0'?><osm></osm>", b"\x00\x00\x00\x05hello"])
def test_foreign_file_is_an_ingest_error(tmp_path: Path, content: bytes):
    bad = tmp_path / "fake.osm.pbf"
    bad.write_bytes(content)
    with pytest.raises(IngestError):
        read_osm(bad)


@pytest.mark.parametrize(("maxspeed", "highway", "kmh"), [
    ("50", "primary", 50.0), ("30 mph", "primary", 48.3), ("RU:urban", "primary", 60.0),
    ("RU:living_street", "service", 20.0), (None, "trunk", 90.0), (None, "tertiary", 50.0),
    ("none", "motorway", 110.0), ("fast", "unclassified", 40.0),
])
def test_speed_rules(maxspeed, highway, kmh):
    skipped: list[dict] = []
    assert osm._speed(maxspeed, highway, "way/1", skipped) == kmh
    assert bool(skipped) == (maxspeed == "fast")  # unparsable values are reported


def test_numbers_and_pbf_header_parsing():
    skipped: list[dict] = []
    assert osm._number("3;5", "way/1", "building:levels", skipped) == 5.0
    assert math.isnan(osm._number("many", "way/2", "capacity", skipped))
    assert [s["row"] for s in skipped] == ["way/2"]
    assert osm._blob_header(b"\x0a\x09OSMHeader\x18\xac\x02") == (b"OSMHeader", 300)
    assert osm._blob_header(b"\xff\xff\xff") == (None, 0)
