"""Population raster → zones / buildings (layers.ingest.raster), no database.

The real-data fixture is DERIVED from data/vologda/buildings.parquet: its `population` column
rasterized at 100 m (sum per cell of buildings whose representative point is in it). It is not an
independent census raster, so it checks conservation and redistribution, not the population itself.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin, rowcol
from shapely.geometry import box

from layers.errors import IngestError
from layers.ingest.raster import (
    population_into_buildings,
    population_into_territories,
    rasterize_population,
    unassigned_population,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "vologda"
TOTAL = 356_810


@pytest.fixture(scope="module")
def buildings() -> gpd.GeoDataFrame:
    return gpd.read_parquet(DATA / "buildings.parquet")


@pytest.fixture(scope="module")
def pop_tif(buildings, tmp_path_factory) -> Path:
    return rasterize_population(buildings, "population", tmp_path_factory.mktemp("raster") / "pop.tif", 100.0)


def _write(path: Path, data: np.ndarray, crs: str | None = "EPSG:32637", nodata: float | None = -1.0) -> Path:
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="float32",
                   transform=from_origin(500_000, 6_600_300, 100, 100), nodata=nodata)
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype("float32"), 1)
    return path


def test_rasterized_fixture_keeps_every_person(pop_tif):
    with rasterio.open(pop_tif) as src:
        assert src.crs.to_epsg() == 32637  # the buildings' own projected CRS
        assert src.res == (100.0, 100.0) and src.nodata == -1 and src.profile["compress"] == "deflate"
        assert src.read(1).sum(dtype="float64") == pytest.approx(TOTAL, rel=1e-6)


def test_city_boundary_total(pop_tif):
    boundary = gpd.read_parquet(DATA / "boundaries.parquet")  # EPSG:4326, reprojected inside
    total = population_into_territories(pop_tif, boundary)
    assert total.shape == (1,)
    # Measured: 356,810 (all populated buildings lie inside the boundary; 3 unpopulated ones do not).
    assert total[0] == pytest.approx(TOTAL, rel=0.01)


def test_cell_centre_rule_nodata_and_negatives(tmp_path):
    data = np.array([[1, 2, -1], [4, -5, 6], [np.nan, 8, 9]])  # -1 is nodata, -5 negative, NaN
    tif = _write(tmp_path / "small.tif", data)
    x0, y1 = 500_000, 6_600_300
    zones = gpd.GeoDataFrame(geometry=[
        box(x0, y1 - 300, x0 + 140, y1),          # column 0 centres (x0+50) only: 1 + 4 + nan
        box(x0 + 140, y1 - 160, x0 + 300, y1),    # centres of rows 0-1, cols 1-2: 2 + (-1) + (-5) + 6
        box(x0, y1 - 300, x0 + 300, y1),          # overlaps both: everything valid
    ], crs="EPSG:32637")
    assert population_into_territories(tif, zones).tolist() == [5.0, 8.0, 30.0]


def test_living_area_split_conserves_population(pop_tif, buildings):
    values = population_into_buildings(pop_tif, buildings, weight="living_area")
    unassigned = unassigned_population(pop_tif, buildings)
    assert values.shape == (len(buildings),)
    assert values.sum() + unassigned == pytest.approx(TOTAL, rel=1e-4)
    # Measured: Pearson r = 0.99999982 — population in this data is ~0.0453 * living_area, so a
    # living-area split recovers it almost exactly; the footprint split below is the harder case.
    assert np.corrcoef(values, buildings["population"])[0, 1] > 0.8


def test_zero_living_area_gets_nothing_beside_a_dwelling(pop_tif, buildings):
    values = population_into_buildings(pop_tif, buildings, weight="living_area")
    with rasterio.open(pop_tif) as src:
        pts = buildings.representative_point()
        rows, cols = rowcol(src.transform, pts.x.to_numpy(), pts.y.to_numpy())
    cell = np.asarray(rows) * 100_000 + np.asarray(cols)
    living = buildings["living_area"].to_numpy() > 0
    zero_beside = ~living & np.isin(cell, cell[living])
    assert zero_beside.sum() > 1000  # thousands of sheds/garages share a cell with housing
    assert (values[zero_beside] == 0).all()


def test_footprint_split_when_no_weight(pop_tif, buildings):
    values = population_into_buildings(pop_tif, buildings)  # footprint area in UTM metres
    assert values.sum() + unassigned_population(pop_tif, buildings) == pytest.approx(TOTAL, rel=1e-4)
    # Measured: r = 0.955 — non-residential footprints dilute it, but most people still land right.
    assert np.corrcoef(values, buildings["population"])[0, 1] > 0.8


def test_cells_without_buildings_are_reported(pop_tif, buildings):
    some = buildings.iloc[::3]  # drop two thirds: whole populated cells lose all their buildings
    values = population_into_buildings(pop_tif, some, weight="living_area")
    unassigned = unassigned_population(pop_tif, some)
    assert unassigned > 0
    assert values.sum() + unassigned == pytest.approx(TOTAL, rel=1e-4)


def test_zero_weights_fall_back_to_footprint_area(tmp_path):
    tif = _write(tmp_path / "one.tif", np.array([[100.0]]))
    x0, y1 = 500_000, 6_600_300
    footprints = [box(x0 + 10, y1 - 20, x0 + 20, y1 - 10), box(x0 + 30, y1 - 90, x0 + 60, y1 - 80)]  # 100 : 300 m²
    houses = gpd.GeoDataFrame({"living_area": [0.0, 0.0]}, geometry=footprints, crs="EPSG:32637")
    houses = houses.to_crs("EPSG:4326")  # area must still be measured in metres
    values = population_into_buildings(tif, houses, weight="living_area")
    assert values == pytest.approx([25.0, 75.0], rel=1e-3)


def test_raster_without_crs_needs_override(tmp_path, buildings):
    tif = _write(tmp_path / "nocrs.tif", np.ones((3, 3)), crs=None)
    zone = gpd.GeoDataFrame(geometry=[box(500_000, 6_600_000, 500_300, 6_600_300)], crs="EPSG:32637")
    with pytest.raises(IngestError, match="no coordinate reference system.*pass crs"):
        population_into_territories(tif, zone)
    with pytest.raises(IngestError, match="no coordinate reference system"):
        population_into_buildings(tif, zone)
    assert population_into_territories(tif, zone, crs="EPSG:32637").tolist() == [9.0]
    # One "building" covering the raster: its representative point takes one cell, 8 are unassigned.
    assert population_into_buildings(tif, zone, crs="EPSG:32637").tolist() == [1.0]
    assert unassigned_population(tif, zone, crs="EPSG:32637") == 8.0


def test_bad_inputs(tmp_path, pop_tif, buildings):
    boundary = gpd.read_parquet(DATA / "boundaries.parquet")
    with pytest.raises(IngestError, match="no such file"):
        population_into_territories(tmp_path / "missing.tif", boundary)
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(pop_tif.read_bytes()[:200])
    with pytest.raises(IngestError, match="cannot be read as a raster"):
        population_into_territories(truncated, boundary)
    with pytest.raises(IngestError, match="cannot be read as a raster"):
        population_into_buildings(truncated, buildings)
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(IngestError, match="cannot be read as a raster"):
        population_into_territories(text, boundary)
    far = gpd.GeoDataFrame(geometry=[box(37.5, 55.7, 37.7, 55.8)], crs="EPSG:4326")  # Moscow, not Vologda
    with pytest.raises(IngestError, match="does not intersect"):
        population_into_territories(pop_tif, far)
    with pytest.raises(IngestError, match="does not intersect"):
        population_into_buildings(pop_tif, far)
    with pytest.raises(IngestError, match="differs from crs"):
        population_into_territories(pop_tif, boundary, crs="EPSG:4326")
    with pytest.raises(IngestError, match="no weight column 'floors'"):
        population_into_buildings(pop_tif, buildings, weight="floors")
