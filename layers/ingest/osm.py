"""Pure reader of OpenStreetMap PBF extracts (pyrosm): streets, buildings, facilities.

No database here: `read_osm` returns GeoDataFrames in EPSG:4326 plus a list of
rows that were dropped or had tag values it could not understand.

Rules (documented defaults, Russian traffic rules where a number is needed):
* Streets are OSM ways of pyrosm's "all" network. walk/drive come from the highway
  class (WALK_ONLY / DRIVE_ONLY / both), then access=no|private closes the way unless
  foot=* / motor_vehicle=* (or motorcar=*) re-opens it, and foot=no, motor_vehicle=no
  close one mode. Motorways/trunks are walkable only with sidewalk=* or foot=yes.
  Ways closed to both modes are kept (they are still streets) with walk=drive=False.
* speed_kmh: numeric maxspeed (mph converted, "RU:urban" etc. understood), else
  DEFAULT_SPEED per class; NaN where drive is False. oneway=-1 ways are reversed.
* Facilities: FACILITY_TAGS (first match in dict order wins) plus heat plants:
  man_made=works with product containing "heat" -> boiler_house.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd
import shapely

from layers.errors import IngestError

if TYPE_CHECKING:
    import pyrosm

FACILITY_TAGS: dict[str, str] = {
    "amenity=school": "school", "amenity=kindergarten": "kindergarten",
    "amenity=clinic": "polyclinic", "amenity=doctors": "polyclinic", "amenity=hospital": "hospital",
    "amenity=pharmacy": "pharmacy", "amenity=library": "library", "amenity=university": "university",
    "amenity=college": "college", "amenity=theatre": "culture", "amenity=arts_centre": "culture",
    "amenity=community_centre": "culture", "amenity=cinema": "culture",
    "healthcare=clinic": "polyclinic", "healthcare=doctor": "polyclinic", "healthcare=centre": "polyclinic",
    "healthcare=hospital": "hospital", "healthcare=pharmacy": "pharmacy",
    "leisure=sports_centre": "sports", "leisure=stadium": "sports", "leisure=sports_hall": "sports",
    "power=substation": "substation", "building=boiler_house": "boiler_house",
}
HEAT_WORKS = ("man_made", "works")  # boiler_house only when product=* mentions heat

WALK_ONLY = {"footway", "path", "pedestrian", "steps", "cycleway", "bridleway", "corridor",
             "elevator", "trail", "platform"}
DRIVE_ONLY = {"motorway", "motorway_link", "trunk", "trunk_link"}
DEFAULT_SPEED: dict[str, float] = {  # km/h; 60 is the legal maximum inside Russian settlements
    "motorway": 110, "motorway_link": 60, "trunk": 90, "trunk_link": 60, "primary": 60,
    "primary_link": 60, "secondary": 60, "secondary_link": 60, "tertiary": 50, "tertiary_link": 50,
    "unclassified": 40, "road": 40, "residential": 20, "living_street": 20, "service": 20, "track": 20,
}
FALLBACK_SPEED = 40.0
ZONE_SPEED = {"urban": 60, "rural": 90, "motorway": 110, "trunk": 90, "living_street": 20, "walk": 5}
NO, YES = {"no", "private"}, {"yes", "designated", "permissive", "destination", "permit"}

Progress = Callable[[str], None] | None


@dataclass
class OsmExtract:
    streets: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    skipped: list[dict] = field(default_factory=list)


def _check_pbf(path: Path) -> None:
    """Walk the PBF block framing (no decoding) so foreign or truncated files fail cleanly."""
    size, pos, first = path.stat().st_size, 0, True
    with path.open("rb") as f:
        while pos < size:
            head = f.read(4)
            n = int.from_bytes(head, "big")
            if len(head) < 4 or not 0 < n <= 65536 or len(hdr := f.read(n)) < n:
                raise IngestError(f"{path.name} is not a valid OSM PBF (bad block header at byte {pos})")
            btype, datasize = _blob_header(hdr)
            if first and btype != b"OSMHeader":
                raise IngestError(f"{path.name} is not an OSM PBF file (no OSMHeader block)")
            pos = f.tell() + datasize
            if datasize <= 0 or pos > size:
                raise IngestError(f"{path.name} is truncated or corrupt (block runs past byte {size})")
            f.seek(pos)
            first = False
    if first:
        raise IngestError(f"{path.name} is empty")


def _blob_header(buf: bytes) -> tuple[bytes | None, int]:
    """Decode BlobHeader {1: type (string), 3: datasize (varint)}; junk yields (None, 0)."""
    i, btype, datasize = 0, None, 0

    def varint() -> int:
        nonlocal i
        val = shift = 0
        while i < len(buf) and shift < 64:
            b = buf[i]
            i += 1
            val |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return val
        raise ValueError("bad varint")

    try:
        while i < len(buf):
            key = varint()
            if key & 7 == 0:
                v = varint()
                datasize = v if key >> 3 == 3 else datasize
            elif key & 7 == 2:
                ln = varint()
                btype = buf[i:i + ln] if key >> 3 == 1 else btype
                i += ln
            else:
                return None, 0
    except ValueError:
        return None, 0
    return btype, datasize


def _tag(df: pd.DataFrame, key: str) -> pd.Series:
    """Tag values from the column pyrosm made, else from its JSON `tags` remainder."""
    col = df[key] if key in df.columns else [None] * len(df)
    vals = [c if isinstance(c, str) else t.get(key) for c, t in zip(col, df["_tags"], strict=True)]
    return pd.Series([v.strip() if isinstance(v, str) and v.strip() else None for v in vals],
                     index=df.index, dtype=object)


def _prepare(df: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    if df is None or df.empty:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=4326))
    df = df.reset_index(drop=True)
    df["_tags"] = df["tags"].map(_json) if "tags" in df.columns else [{}] * len(df)
    df["_row"] = df["osm_type"].fillna("way").astype(str) + "/" + df["id"].astype("int64").astype(str)
    return df.set_crs(4326, allow_override=True)


def _json(s: object) -> dict:
    try:
        return json.loads(s) if isinstance(s, str) else {}
    except ValueError:
        return {}


def _address(df: pd.DataFrame) -> pd.Series:
    street, number = _tag(df, "addr:street"), _tag(df, "addr:housenumber")
    return pd.Series([f"{s}, {n}" if s and n else s for s, n in zip(street, number, strict=True)],
                     index=df.index, dtype=object)


def _number(v: str | None, row: str, what: str, skipped: list[dict]) -> float:
    """Largest number in a tag value ("3;5" -> 5); NaN and a report when none."""
    if v is None:
        return math.nan
    nums = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", v.replace(",", "."))]
    if not nums:
        skipped.append({"row": row, "reason": f"{what}={v!r} is not a number; left empty"})
    return max(nums) if nums else math.nan


def _speed(v: str | None, highway: str, row: str, skipped: list[dict]) -> float:
    default = float(DEFAULT_SPEED.get(highway, FALLBACK_SPEED))
    if v is None or v in {"none", "signals", "variable"}:
        return default
    if m := re.match(r"^\s*(\d+(?:\.\d+)?)\s*(mph)?", v):
        return round(float(m[1]) * (1.609344 if m[2] else 1.0), 1)
    zone = v.split(":")[-1].strip().lower() if ":" in v or v == "walk" else ""
    if zone in ZONE_SPEED:
        return float(ZONE_SPEED[zone])
    skipped.append({"row": row, "reason": f"maxspeed={v!r} not understood; {default:g} km/h used"})
    return default


def _streets(net: gpd.GeoDataFrame, skipped: list[dict]) -> gpd.GeoDataFrame:
    cols = ["osm_id", "name", "highway", "walk", "drive", "speed_kmh", "oneway"]
    if net.empty:
        return gpd.GeoDataFrame(columns=[*cols, "geometry"], geometry="geometry", crs=4326)
    t = {k: _tag(net, k).str.lower() for k in
         ("highway", "access", "foot", "motor_vehicle", "motorcar", "sidewalk", "oneway", "junction")}
    hw = t["highway"].fillna("road")
    motor = t["motor_vehicle"].fillna(t["motorcar"])
    closed = t["access"].isin(NO)
    walk = ~hw.isin(DRIVE_ONLY) | t["sidewalk"].isin({"both", "left", "right", "yes"})
    walk = (walk & ~closed) | t["foot"].isin(YES)
    walk &= ~t["foot"].isin(NO)
    drive = ~hw.isin(WALK_ONLY) & ~(closed & ~motor.isin(YES)) & ~motor.isin(NO)
    ow = t["oneway"]
    speeds = [_speed(v, h, r, skipped) if d else math.nan
              for v, h, r, d in zip(_tag(net, "maxspeed"), hw, net["_row"], drive, strict=True)]
    geom = net.geometry.where(ow != "-1", net.geometry.reverse())
    out = gpd.GeoDataFrame({
        "osm_id": net["id"].astype("int64"), "name": _tag(net, "name"), "highway": hw,
        "walk": walk.astype(bool), "drive": drive.astype(bool), "speed_kmh": pd.Series(speeds, dtype=float),
        "oneway": ow.isin({"yes", "true", "1", "-1"}) | t["junction"].isin({"roundabout", "circular"})
        | hw.isin({"motorway", "motorway_link"}) & ow.isna(),
        "_row": net["_row"],
    }, geometry=geom, crs=4326).explode(index_parts=False)
    bad = out.geometry.isna() | out.geometry.is_empty | (out.geom_type != "LineString") | (out.length == 0)
    skipped += [{"row": r, "reason": "street geometry is empty or degenerate"} for r in out.loc[bad, "_row"]]
    return out[~bad].drop(columns="_row").reset_index(drop=True)


def _polygonal(g: shapely.Geometry | None) -> shapely.Geometry | None:
    """Repair a building footprint; None when nothing polygonal survives."""
    if g is None or g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon"):
        return None
    if not g.is_valid:
        g = shapely.make_valid(g)
        parts = [p for p in getattr(g, "geoms", [g]) if p.geom_type in ("Polygon", "MultiPolygon")]
        g = shapely.union_all(parts) if parts else None
    return g if g is not None and not g.is_empty else None


def _buildings(b: gpd.GeoDataFrame, skipped: list[dict]) -> gpd.GeoDataFrame:
    cols = ["osm_id", "floors", "use", "year", "address"]
    if b.empty:
        return gpd.GeoDataFrame(columns=[*cols, "geometry"], geometry="geometry", crs=4326)
    rows = b["_row"]
    levels = [_number(v, r, "building:levels", skipped) for v, r in zip(_tag(b, "building:levels"), rows,
                                                                         strict=True)]
    floors = pd.array([math.ceil(x) if 0 < x < 200 else None for x in levels], dtype="Int64")
    dates = _tag(b, "building:year").fillna(_tag(b, "start_date"))
    years = []
    for v, r in zip(dates, rows, strict=True):
        m = re.search(r"(?<!\d)(\d{4})(?!\d)", v) if v else None
        if v and not m:
            skipped.append({"row": r, "reason": f"start_date={v!r} has no 4-digit year; left empty"})
        years.append(int(m[1]) if m else None)
    use = _tag(b, "building").map(lambda v: None if v is None or v.lower() == "yes" else v)
    geom = gpd.GeoSeries([_polygonal(g) for g in b.geometry], crs=4326)
    out = gpd.GeoDataFrame({"osm_id": b["id"].astype("int64"), "floors": floors, "use": use,
                            "year": pd.array(years, dtype="Int64"), "address": _address(b)},
                           geometry=geom, crs=4326)
    bad = out.geometry.isna()
    skipped += [{"row": r, "reason": "building geometry is not a usable polygon"} for r in rows[bad]]
    return out[~bad].reset_index(drop=True)


def _facilities(p: gpd.GeoDataFrame, skipped: list[dict]) -> gpd.GeoDataFrame:
    cols = ["osm_id", "osm_type", "type_code", "name", "address", "capacity"]
    if p.empty:
        return gpd.GeoDataFrame(columns=[*cols, "geometry"], geometry="geometry", crs=4326)
    code = pd.Series(None, index=p.index, dtype=object)
    vals: dict[str, pd.Series] = {}
    for kv, c in FACILITY_TAGS.items():
        k, v = kv.split("=")
        vals[k] = vals[k] if k in vals else _tag(p, k)
        code = code.where(code.notna() | (vals[k] != v), c)
    heat = (_tag(p, HEAT_WORKS[0]) == HEAT_WORKS[1]) & _tag(p, "product").str.contains("heat", na=False)
    code = code.where(code.notna() | ~heat, "boiler_house")
    cap = [_number(v, r, "capacity", skipped) for v, r in zip(_tag(p, "capacity"), p["_row"], strict=True)]
    with warnings.catch_warnings():  # centroid in degrees: fine for building-sized shapes
        warnings.simplefilter("ignore", UserWarning)
        geom = p.geometry.centroid
    out = gpd.GeoDataFrame({"osm_id": p["id"].astype("int64"), "osm_type": p["osm_type"].astype(str),
                            "type_code": code, "name": _tag(p, "name"), "address": _address(p),
                            "capacity": pd.Series(cap, dtype=float), "_row": p["_row"]},
                           geometry=geom, crs=4326)
    bad = out.geometry.isna() | out.geometry.is_empty
    skipped += [{"row": r, "reason": "facility has no usable geometry"} for r in out.loc[bad, "_row"]]
    return out[~bad & out["type_code"].notna()].drop(columns="_row").reset_index(drop=True)


def read_osm(path: str | Path, bbox: tuple[float, float, float, float] | None = None,
             progress: Progress = None) -> OsmExtract:
    """Read streets, buildings and facilities of an OSM PBF, optionally within bbox (lon/lat)."""
    say = progress or (lambda _msg: None)
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"OSM file not found: {path}")
    if bbox is not None:
        try:
            x0, y0, x1, y1 = (float(v) for v in bbox)
        except (TypeError, ValueError) as e:
            raise IngestError(f"bbox must be four numbers (minlon, minlat, maxlon, maxlat): {bbox!r}") from e
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            raise IngestError(f"bbox is not a lon/lat box with min < max: {bbox!r}")
        bbox = (x0, y0, x1, y1)
    say(f"checking {path.name}")
    _check_pbf(path)
    filt: dict[str, list[str]] = {}
    for kv in [*FACILITY_TAGS, "=".join(HEAT_WORKS)]:
        k, v = kv.split("=")
        filt.setdefault(k, []).append(v)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            osm = _open(path, bbox)
            say("reading streets")
            net = _prepare(osm.get_network(network_type="all", extra_attributes=["junction", "motorcar"]))
            say("reading buildings")
            bld = _prepare(osm.get_buildings(extra_attributes=["building:year"]))
            say("reading facilities")
            poi = _prepare(osm.get_pois(custom_filter=filt, extra_attributes=["capacity", "product"]))
    except Exception as e:  # pyrosm fails in many shapes on odd input
        raise IngestError(f"cannot read OSM PBF {path.name}: {type(e).__name__}: {e}") from e
    skipped: list[dict] = []
    say("deriving attributes")
    ext = OsmExtract(_streets(net, skipped), _buildings(bld, skipped), _facilities(poi, skipped), skipped)
    if ext.streets.empty and ext.buildings.empty and ext.facilities.empty:
        where = f" within bbox {bbox}" if bbox else ""
        raise IngestError(f"{path.name} has no streets, buildings or facilities{where}", problems=skipped)
    say(f"{len(ext.streets)} street edges, {len(ext.buildings)} buildings, {len(ext.facilities)} facilities")
    return ext


def _open(path: Path, bbox: tuple[float, float, float, float] | None) -> pyrosm.OSM:
    import pyrosm  # imported lazily: heavy, and only needed when reading

    return pyrosm.OSM(str(path), bounding_box=list(bbox) if bbox else None)
