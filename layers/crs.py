"""Coordinate reference systems the OGC API offers, and how PostGIS moves geometries between them.

Storage is EPSG:4326 with lon/lat order (PostGIS order). Offered CRSs: OGC CRS84, EPSG:4326
(lat/lon axis order, as the EPSG registry defines it), EPSG:3857, the UTM zone of each loaded
territory and the Russian local systems (МСК) configured per territory. МСК have no EPSG codes, so
they are transformed with their PROJ definitions from `data/cadastre/msk_proj4.csv`
(`ST_Transform(geom, from_proj, to_proj)`) and named by CDT URNs, e.g. `urn:ogc:def:crs:CDT::MSK-35-2`.
МСК coordinates are served as (easting, northing), as their PROJ definitions state.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from layers.errors import InvalidParameterValue

MSK_TABLE = Path(__file__).resolve().parents[1] / "data/cadastre/msk_proj4.csv"
OGC_EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
STORAGE_SRID = 4326


@dataclass(frozen=True)
class Crs:
    uri: str
    title: str
    srid: int | None = None  # an EPSG code known to PostGIS's spatial_ref_sys
    proj: str | None = None  # a PROJ string, for systems PostGIS has no SRID for (МСК)
    lat_lon: bool = False  # axis order of the CRS is latitude first
    geographic: bool = False

    @property
    def is_storage(self) -> bool:
        return self.srid == STORAGE_SRID and not self.lat_lon

    @property
    def decimals(self) -> int:
        """Coordinate digits to write: ~1 cm either way."""
        return 7 if self.geographic else 2

    def from_storage(self, expr: str) -> tuple[str, dict]:
        """SQL transforming `expr` (EPSG:4326, lon/lat) into this CRS, with its bound parameters."""
        if self.proj:
            return f"ST_Transform({expr}, CAST(:crs_out_proj AS text))", {"crs_out_proj": self.proj}
        out = expr if self.srid == STORAGE_SRID else f"ST_Transform({expr}, {int(self.srid)})"
        return (f"ST_FlipCoordinates({out})" if self.lat_lon else out), {}

    def to_storage(self, expr: str, name: str = "crs_in") -> tuple[str, dict]:
        """SQL transforming `expr` (coordinates in this CRS, any SRID) into storage, with bound parameters."""
        if self.proj:
            return (f"ST_SetSRID(ST_Transform(ST_SetSRID({expr}, 0), CAST(:{name}_proj AS text), 'EPSG:4326'), 4326)",
                    {f"{name}_proj": self.proj})
        if self.lat_lon:
            expr = f"ST_FlipCoordinates({expr})"
        out = f"ST_SetSRID({expr}, {int(self.srid)})"
        return (out if self.srid == STORAGE_SRID else f"ST_Transform({out}, {STORAGE_SRID})"), {}

    def bbox_to_lonlat_order(self, bbox: list[float]) -> list[float]:
        """A bbox as given in this CRS's axis order, re-ordered to (x=east, y=north)."""
        if self.lat_lon and len(bbox) == 4:
            return [bbox[1], bbox[0], bbox[3], bbox[2]]
        if self.lat_lon and len(bbox) == 6:
            return [bbox[1], bbox[0], bbox[2], bbox[4], bbox[3], bbox[5]]
        return bbox


CRS84 = Crs(CRS84_URI, "WGS 84 (lon, lat)", srid=4326, geographic=True)
EPSG4326 = Crs(OGC_EPSG + "4326", "WGS 84 (lat, lon)", srid=4326, lat_lon=True, geographic=True)
EPSG3857 = Crs(OGC_EPSG + "3857", "WGS 84 / Pseudo-Mercator", srid=3857)


def utm(lon: float, lat: float) -> Crs:
    zone = int((lon + 180) // 6) + 1
    code = (32600 if lat >= 0 else 32700) + zone
    return Crs(f"{OGC_EPSG}{code}", f"WGS 84 / UTM zone {zone}{'N' if lat >= 0 else 'S'}", srid=code)


@lru_cache(maxsize=1)
def msk_systems() -> dict[str, Crs]:
    """Every МСК zone of the table, keyed by short name 'MSK-35-2'."""
    out: dict[str, Crs] = {}
    with open(MSK_TABLE, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            m = re.match(r"МСК-(\d+)(?:\.\d+)? зона (\d+)(?! \()", row["title"])
            if not m:
                continue
            name = f"MSK-{m.group(1)}-{m.group(2)}"
            out.setdefault(name, Crs(f"urn:ogc:def:crs:CDT::{name}", row["title"], proj=row["proj4"]))
    return out


def msk_for(lon: float, lat: float, region_code: str) -> Crs | None:
    """The МСК zone of a region (two-digit code of the subject, as in cadastral numbers) whose central
    meridian is nearest to `lon`."""
    best: tuple[float, Crs] | None = None
    for name, crs in msk_systems().items():
        if name.split("-")[1] != region_code:
            continue
        lon0 = float(re.search(r"\+lon_0=(-?[\d.]+)", crs.proj or "").group(1))
        if best is None or abs(lon - lon0) < best[0]:
            best = (abs(lon - lon0), crs)
    return best[1] if best else None


def parse(value: str | None, offered: list[Crs], what: str = "crs") -> Crs:
    """The offered CRS named by `value` (URI, URN, `EPSG:nnnn`, `[EPSG:nnnn]` or `MSK-35-2`)."""
    if value is None or not value.strip():
        return CRS84
    v = value.strip().strip("[]")
    for crs in offered:
        if v in (crs.uri, _short(crs.uri)):
            return crs
    raise InvalidParameterValue(f"{what} '{value}' is not offered; use one of: {', '.join(c.uri for c in offered)}")


def _short(uri: str) -> str:
    if uri == CRS84_URI:
        return "OGC:CRS84"
    if uri.startswith(OGC_EPSG):
        return "EPSG:" + uri[len(OGC_EPSG):]
    return uri.rsplit(":", 1)[-1]
