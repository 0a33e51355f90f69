"""Read vector files (GeoPackage, GeoJSON, Shapefile, GeoParquet, CSV) into EPSG:4326."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from layers.errors import IngestError

STORAGE_CRS = "EPSG:4326"
LONGITUDE_NAMES = ("lon", "lng", "longitude", "x", "geo_lon")
LATITUDE_NAMES = ("lat", "latitude", "y", "geo_lat")


def parse_crs(value: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise IngestError(f"Unknown CRS '{value}': {exc}") from None


def read_vector(path: str | Path, crs: str | None = None, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a file and reproject it to the storage CRS.

    A file with no CRS is refused unless `crs` names it; `crs` never overrides a CRS
    the file declares, since silently re-labelling coordinates moves the data.
    """
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".shp":
        _check_shp_length(path)
    try:
        if suffix == ".parquet":
            gdf = gpd.read_parquet(path)
        elif suffix == ".csv":
            gdf = _read_csv(path)
        else:
            gdf = pyogrio.read_dataframe(path, layer=layer)
    except IngestError:
        raise
    except Exception as exc:  # pyogrio/pyarrow raise many types for broken files
        raise IngestError(f"{path.name}: cannot be read as a vector file ({type(exc).__name__}: {exc})") from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
        raise IngestError(f"{path.name}: has no geometry column")
    if gdf.crs is None:
        if not crs:
            raise IngestError(f"{path.name}: the file declares no coordinate reference system; "
                              "pass --crs (e.g. --crs EPSG:32637) if you know it")
        gdf = gdf.set_crs(parse_crs(crs))
    elif crs and not CRS.from_user_input(gdf.crs).equals(parse_crs(crs)):
        raise IngestError(f"{path.name}: the file declares {gdf.crs.to_string()}, which differs from --crs {crs}; "
                          "remove --crs or fix the file")
    if not CRS.from_user_input(gdf.crs).equals(CRS.from_user_input(STORAGE_CRS)):
        gdf = gdf.to_crs(STORAGE_CRS)
    return gdf


def _check_shp_length(path: Path) -> None:
    """GDAL reads a truncated .shp without an error, the lost shapes as missing geometries
    (which would then be skipped as "no geometry"); the header states the full length."""
    with open(path, "rb") as fh:
        header = fh.read(28)
    if len(header) < 28 or int.from_bytes(header[:4], "big") != 9994:
        raise IngestError(f"{path.name}: not a Shapefile (bad .shp header)")
    declared = int.from_bytes(header[24:28], "big") * 2  # in 16-bit words
    actual = path.stat().st_size
    if actual < declared:
        raise IngestError(f"{path.name}: the file is truncated ({actual} of {declared} bytes); nothing was loaded")


def _read_csv(path: Path) -> gpd.GeoDataFrame:
    """CSV with a WKT column (`wkt`, `geometry`, `geom`) or longitude/latitude columns.

    A CSV has no place for a CRS, so it is always declared by the caller (--crs).
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:
        raise IngestError(f"{path.name}: cannot be read as CSV ({exc})") from None
    lower = {c.lower(): c for c in df.columns}
    wkt_col = next((lower[n] for n in ("wkt", "geometry", "geom", "the_geom") if n in lower), None)
    if wkt_col:
        geoms, bad = [], []
        for i, text in enumerate(df[wkt_col]):
            try:
                geoms.append(shapely.from_wkt(text) if isinstance(text, str) else None)
            except shapely.errors.GEOSException as exc:
                geoms.append(None)
                bad.append({"row": i + 2, "reason": f"unreadable WKT: {exc}"})
        if bad:
            raise IngestError(f"{path.name}: {len(bad)} row(s) with unreadable WKT", bad)
        return gpd.GeoDataFrame(df.drop(columns=[wkt_col]), geometry=geoms, crs=None)
    lon = next((lower[n] for n in LONGITUDE_NAMES if n in lower), None)
    lat = next((lower[n] for n in LATITUDE_NAMES if n in lower), None)
    if not (lon and lat):
        raise IngestError(f"{path.name}: no geometry: expected a WKT column (wkt/geometry/geom) "
                          f"or longitude/latitude columns; found {', '.join(df.columns)}")
    x = pd.to_numeric(df[lon], errors="coerce")
    y = pd.to_numeric(df[lat], errors="coerce")
    bad = [{"row": int(i) + 2, "reason": "longitude/latitude not numeric"}
           for i in df.index[(x.isna() | y.isna()) & (df[lon].notna() | df[lat].notna())]]
    if bad:
        raise IngestError(f"{path.name}: {len(bad)} row(s) with non-numeric coordinates", bad)
    # A row with neither coordinate has no geometry (skipped later), not a POINT (NaN NaN).
    points = gpd.GeoSeries(gpd.points_from_xy(x, y), index=df.index)
    points[x.isna() & y.isna()] = None
    return gpd.GeoDataFrame(df, geometry=points, crs=None)
