"""Population rasters (people per cell, e.g. WorldPop/GHS-POP GeoTIFF) into zones and buildings.

Pure functions, no database. Only the window of the raster covering the input
geometries is read, so a national 100 m raster works for a single city.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.errors import WindowError
from rasterio.transform import from_origin, rowcol
from rasterio.windows import Window, from_bounds

from layers.errors import IngestError
from layers.ingest.vector import parse_crs

MAX_CELLS = 200_000_000  # ~800 MB of float32: refuse rather than exhaust memory


def _read(raster_path: str | Path, bounds_of: gpd.GeoSeries, crs: str | None) -> tuple[np.ndarray, Affine, CRS]:
    """Read the raster window covering `bounds_of`; returns (people per cell >= 0, window transform, raster CRS).

    nodata, NaN and negative cells become 0: they hold no people we can place.
    """
    path = Path(raster_path)
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if bounds_of.crs is None:
        raise IngestError("the geometries have no CRS; set one before intersecting them with a raster")
    try:
        src = rasterio.open(path)
    except Exception as exc:  # GDAL raises several types for broken or non-raster files
        raise IngestError(f"{path.name}: cannot be read as a raster ({type(exc).__name__}: {exc})") from None
    with src:
        if src.crs is None:
            if not crs:
                raise IngestError(f"{path.name}: the raster declares no coordinate reference system; "
                                  "pass crs (e.g. crs='EPSG:32637') if you know it")
            raster_crs = parse_crs(crs)
        elif crs and not CRS.from_user_input(src.crs).equals(parse_crs(crs)):
            raise IngestError(f"{path.name}: the raster declares {src.crs.to_string()}, which differs "
                              f"from crs {crs}; remove crs or fix the file")
        else:
            raster_crs = CRS.from_user_input(src.crs)
        bounds = bounds_of.to_crs(raster_crs).total_bounds
        if not np.isfinite(bounds).all():
            raise IngestError("no geometries to intersect with the raster (all empty or missing)")
        win = from_bounds(*bounds, transform=src.transform)
        # Widen to whole cells (+1) so geometries on the window edge keep their cells.
        c0, r0 = math.floor(win.col_off), math.floor(win.row_off)
        win = Window(c0, r0, math.ceil(win.col_off + win.width) - c0 + 1, math.ceil(win.row_off + win.height) - r0 + 1)
        try:
            win = win.intersection(Window(0, 0, src.width, src.height))
        except WindowError:
            win = None
        if win is None or win.width < 1 or win.height < 1:
            raise IngestError(f"{path.name}: the raster extent {tuple(round(v, 4) for v in src.bounds)} "
                              f"({raster_crs.to_string()}) does not intersect the geometries "
                              f"{tuple(round(v, 4) for v in bounds)}")
        try:
            data = src.read(1, window=win, masked=True)
        except Exception as exc:  # e.g. a truncated file whose header opened but whose strips are gone
            raise IngestError(f"{path.name}: cannot be read as a raster ({type(exc).__name__}: {exc})") from None
        transform = src.window_transform(win)
    values = np.ma.filled(data.astype("float64"), 0.0)
    values[~np.isfinite(values) | (values < 0)] = 0.0
    return values, transform, raster_crs


def _cells(points: gpd.GeoSeries, transform: Affine, shape: tuple[int, ...]) -> np.ndarray:
    """Flat cell index of each point in the window, -1 when outside it."""
    valid = (points.notna() & ~points.is_empty).to_numpy()
    xs, ys = np.where(valid, points.x.to_numpy(), 0.0), np.where(valid, points.y.to_numpy(), 0.0)
    rows, cols = (np.asarray(a, dtype="int64") for a in rowcol(transform, xs, ys, op=math.floor))
    inside = valid & (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    return np.where(inside, rows * shape[1] + cols, -1)


def population_into_territories(raster_path: str | Path, zones: gpd.GeoDataFrame, crs: str | None = None) -> np.ndarray:
    """People per zone: the sum of cells whose centre lies inside the zone (aligned with `zones`).

    Overlapping zones each count a shared cell; a centre exactly on a border counts for neither
    ("within" is strict), which never happens for zones not drawn on the cell-centre lattice.
    """
    values, transform, raster_crs = _read(raster_path, zones.geometry, crs)
    rows, cols = np.nonzero(values)  # only populated cells matter
    xs, ys = transform @ (cols + 0.5, rows + 0.5)
    tree = shapely.STRtree(zones.geometry.to_crs(raster_crs).to_numpy())
    cell_idx, zone_idx = tree.query(shapely.points(xs, ys), predicate="within")
    return np.bincount(zone_idx, weights=values[rows[cell_idx], cols[cell_idx]], minlength=len(zones))


def _split(raster_path: str | Path, buildings: gpd.GeoDataFrame, weight: str | None,
           crs: str | None) -> tuple[np.ndarray, float]:
    """(people per building, people in window cells that hold no building)."""
    if buildings.crs is None:
        raise IngestError("buildings have no CRS; set one before splitting a raster among them")
    if len(buildings) == 0:
        raise IngestError("no buildings to split the population among")
    values, transform, raster_crs = _read(raster_path, buildings.geometry, crs)
    # The representative point is always inside the footprint, unlike the centroid of an L-shape.
    # Taken in the raster's CRS (as rasterize_population does), so the cell does not depend on the input CRS.
    points = buildings.geometry.to_crs(raster_crs).representative_point()
    cell = _cells(points, transform, values.shape)
    placed = cell >= 0
    n = values.size
    # Footprint area in metres from the local UTM zone, whatever the input CRS.
    utm = buildings.estimate_utm_crs()
    geoms = buildings.geometry if CRS.from_user_input(buildings.crs).equals(utm) else buildings.geometry.to_crs(utm)
    area = geoms.area.fillna(0.0).to_numpy()
    if weight is None:
        w = np.zeros(len(buildings))
    else:
        if weight not in buildings.columns:
            cols = ", ".join(map(str, buildings.columns))
            raise IngestError(f"no weight column '{weight}' in buildings; columns: {cols}")
        w = pd.to_numeric(buildings[weight], errors="coerce").fillna(0.0).to_numpy(dtype="float64")
        bad = np.flatnonzero(w < 0)
        if bad.size:
            raise IngestError(f"{bad.size} building(s) with a negative '{weight}'",
                              [{"row": int(i), "reason": f"{weight} = {w[i]}"} for i in bad[:100]])
    c = cell[placed]
    w_sum = np.bincount(c, weights=w[placed], minlength=n)
    a_sum = np.bincount(c, weights=area[placed], minlength=n)
    count = np.bincount(c, minlength=n)
    # Per cell: by weight; by footprint area when the cell has no weight; equally as a last resort (points).
    share = np.where(w_sum[c] > 0, w[placed] / np.where(w_sum[c] > 0, w_sum[c], 1.0),
                     np.where(a_sum[c] > 0, area[placed] / np.where(a_sum[c] > 0, a_sum[c], 1.0), 1.0 / count[c]))
    result = np.zeros(len(buildings))
    result[placed] = values.ravel()[c] * share
    unassigned = float(values.ravel()[count == 0].sum())
    return result, unassigned


def population_into_buildings(raster_path: str | Path, buildings: gpd.GeoDataFrame, weight: str | None = None,
                              crs: str | None = None) -> np.ndarray:
    """Dasymetric split: each cell's people go to the buildings whose representative point is in it.

    Shares follow `buildings[weight]` (e.g. living_area), or footprint area when `weight` is None or
    all weights in the cell are 0. Returns people per building (aligned with `buildings`); people in
    cells with no building are not invented onto anyone: see `unassigned_population`.
    """
    return _split(raster_path, buildings, weight, crs)[0]


def unassigned_population(raster_path: str | Path, buildings: gpd.GeoDataFrame, crs: str | None = None) -> float:
    """People in raster cells (within the buildings' bounding box) that hold no building."""
    return _split(raster_path, buildings, None, crs)[1]


def rasterize_population(gdf: gpd.GeoDataFrame, value: str, path: str | Path, cell_size_m: float = 100.0,
                         crs: str | None = None) -> Path:
    """Write a float32 GeoTIFF whose cells sum gdf[value] over features whose representative point is in them.

    Grid is aligned to multiples of `cell_size_m` in `crs` (default: gdf's CRS if projected, else local UTM).
    """
    if gdf.crs is None:
        raise IngestError("the features have no CRS; set one before rasterizing")
    if value not in gdf.columns:
        raise IngestError(f"no column '{value}'; columns: {', '.join(map(str, gdf.columns))}")
    if cell_size_m <= 0:
        raise IngestError(f"cell_size_m must be positive, got {cell_size_m}")
    own = CRS.from_user_input(gdf.crs)
    target = parse_crs(crs) if crs else (own if own.is_projected else gdf.estimate_utm_crs())
    points = gdf.geometry.to_crs(target).representative_point()  # in the grid's CRS, as _split does
    points = points[~points.is_empty & points.notna()]
    if points.empty:
        raise IngestError("no features with a geometry to rasterize")
    vals = pd.to_numeric(gdf.loc[points.index, value], errors="coerce").fillna(0.0).to_numpy(dtype="float64")
    minx, miny, maxx, maxy = points.total_bounds
    x0, y1 = math.floor(minx / cell_size_m) * cell_size_m, math.ceil(maxy / cell_size_m) * cell_size_m
    width, height = int((maxx - x0) // cell_size_m) + 1, int((y1 - miny) // cell_size_m) + 1
    if width * height > MAX_CELLS:
        raise IngestError(f"{width} x {height} cells at {cell_size_m} m is too large; use a coarser cell size")
    transform = from_origin(x0, y1, cell_size_m, cell_size_m)
    # Plain floor division (not the inverse affine) so points on the grid's own edges never round outside.
    cols = ((points.x.to_numpy() - x0) // cell_size_m).astype("int64")
    rows = ((y1 - points.y.to_numpy()) // cell_size_m).astype("int64")
    cell = rows * width + cols
    # Sum in float64, store float32: small per-cell counts stay exact to well under a person.
    grid = np.bincount(cell, weights=vals, minlength=width * height).reshape(height, width).astype("float32")
    path = Path(path)
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32", crs=target,
                   transform=transform, nodata=-1.0, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(grid, 1)
    return path
