"""Pure reader of OpenStreetMap PBF extracts (pyrosm): streets, buildings, facilities.

No database here: `read_osm` returns GeoDataFrames in EPSG:4326 plus `skipped`, the rows
dropped (degenerate geometry) or whose tag values could not be understood; `dropped` and
`noted` hold the same items by layer, apart (not in the frames / in them, a value left empty).

Rules (defaults follow Russian traffic rules where a number is needed):
* Streets are the OSM ways of pyrosm's "all" network, MultiLineStrings exploded. walk/drive
  come from the highway class (WALK_ONLY: walk only, DRIVE_ONLY: drive only, else both);
  motorways/trunks are walkable only with sidewalk=both|left|right|yes. access=no|private
  closes a mode unless foot=* / motor_vehicle=* (or motorcar=*) opens it; foot=no|private
  and motor_vehicle=no|private close their mode. Ways closed to both are kept.
* speed_kmh: numeric maxspeed (mph converted; RU:urban, RU:living_street... understood),
  else DEFAULT_SPEED of the class; NaN where drive is False. oneway=-1 ways are reversed
  so that `oneway` always means "drive along the geometry only".
* Buildings: floors = building:levels rounded up (3.5 -> 4); use = building=* ('yes' ->
  None); year = first 4-digit year of building:year or start_date; address "street, number".
* Facilities: FACILITY_TAGS (first match in dict order wins) plus heat plants:
  man_made=works with product=* mentioning "heat" -> boiler_house. Polygons -> centroid.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyrosm
import shapely

from layers.errors import IngestError

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
WALK_ONLY = {"footway", "path", "pedestrian", "steps", "cycleway", "bridleway", "corridor",
             "elevator", "trail", "platform"}
DRIVE_ONLY = {"motorway", "motorway_link", "trunk", "trunk_link"}
DEFAULT_SPEED: dict[str, float] = {  # km/h; 60 is the legal maximum inside Russian settlements
    "motorway": 110, "motorway_link": 60, "trunk": 90, "trunk_link": 60, "primary": 60,
    "primary_link": 60, "secondary": 60, "secondary_link": 60, "tertiary": 50, "tertiary_link": 50,
    "unclassified": 40, "road": 40, "residential": 20, "living_street": 20, "service": 20, "track": 20,
}
FALLBACK_SPEED = 40.0  # any other drivable class
ZONE_SPEED = {"urban": 60, "rural": 90, "motorway": 110, "trunk": 90, "living_street": 20, "walk": 5}
NO, YES = {"no", "private"}, {"yes", "designated", "permissive", "destination", "permit"}


@dataclass
class OsmExtract:
    streets: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    skipped: list[dict] = field(default_factory=list)
    # The same items by layer ("streets", "buildings", "facilities"): rows left out of the frames,
    # and rows kept with the tag value they name left empty or defaulted.
    dropped: dict[str, list[dict]] = field(default_factory=dict)
    noted: dict[str, list[dict]] = field(default_factory=dict)


def _check_pbf(path: Path) -> None:
    """Walk the PBF block framing without decoding, so foreign or truncated files fail cleanly.

    Each block is a 4-byte big-endian BlobHeader length, the BlobHeader (protobuf: 1 = type,
    3 = datasize) and `datasize` bytes of Blob; the first block must be an "OSMHeader".
    """
    size, pos, first = path.stat().st_size, 0, True
    with path.open("rb") as f:
        while pos < size:
            n = int.from_bytes(head := f.read(4), "big")
            if len(head) < 4 or not 0 < n <= 65536 or len(hdr := f.read(n)) < n:
                raise IngestError(f"{path.name} is not a valid OSM PBF (bad block header at byte {pos})")
            btype, datasize = _blob_header(hdr)
            if first and btype != b"OSMHeader":
                raise IngestError(f"{path.name} is not an OSM PBF file (no OSMHeader block)")
            pos = f.tell() + datasize
            if not 0 < datasize <= 32 << 20 or pos > size:
                raise IngestError(f"{path.name} is truncated or corrupt (block runs past byte {size})")
            f.seek(pos)
            first = False
    if first:
        raise IngestError(f"{path.name} is empty")


def _blob_header(buf: bytes) -> tuple[bytes | None, int]:
    """(type, datasize) of a protobuf BlobHeader; (None, 0) for anything else."""
    i, fields = 0, {}

    def varint() -> int:
        nonlocal i
        val = shift = 0
        while i < len(buf) and shift < 64:
            val, shift, i = val | (buf[i] & 0x7F) << shift, shift + 7, i + 1
            if not buf[i - 1] & 0x80:
                return val
        raise ValueError

    try:
        while i < len(buf):
            if (key := varint()) & 7 not in (0, 2):  # only varint and length-delimited fields
                return None, 0
            v = varint()
            fields[key >> 3], i = (buf[i:i + v], i + v) if key & 7 == 2 else (v, i)
    except ValueError:
        return None, 0
    btype, datasize = fields.get(1), fields.get(3)
    return (btype if isinstance(btype, bytes) else None), (datasize if isinstance(datasize, int) else 0)


def _prepare(df: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """pyrosm frame -> clean index, parsed JSON `tags`, and a "way/123" label per row."""
    if df is None or df.empty:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=4326))
    df = df.reset_index(drop=True)
    df["_tags"] = [_json(t) for t in (df["tags"] if "tags" in df.columns else [None] * len(df))]
    df["_row"] = df["osm_type"].fillna("way").astype(str) + "/" + df["id"].astype("int64").astype(str)
    return df.set_crs(4326, allow_override=True)


def _json(s: object) -> dict:
    try:
        d = json.loads(s) if isinstance(s, str) else None
    except ValueError:
        d = None
    return d if isinstance(d, dict) else {}


def _tag(df: pd.DataFrame, key: str) -> pd.Series:
    """Stripped tag values (None when absent): pyrosm's column, else its JSON `tags` remainder."""
    col = df[key] if key in df.columns else [None] * len(df)
    vals = [c if isinstance(c, str) else t.get(key) for c, t in zip(col, df["_tags"], strict=True)]
    return pd.Series([v.strip() if isinstance(v, str) and v.strip() else None for v in vals],
                     index=df.index, dtype=object)


def _empty(cols: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns=[*cols, "geometry"], geometry="geometry", crs=4326)


def _address(df: pd.DataFrame) -> pd.Series:
    street, number = _tag(df, "addr:street"), _tag(df, "addr:housenumber")
    return pd.Series([f"{s}, {n}" if s and n else s for s, n in zip(street, number, strict=True)],
                     index=df.index, dtype=object)


def _number(v: str | None, row: str, what: str, skipped: list[dict]) -> float:
    """Largest number in a tag value ("3;5" -> 5); NaN, reported, when there is none."""
    if v is None:
        return math.nan
    if nums := [float(x) for x in re.findall(r"\d+(?:\.\d+)?", v.replace(",", "."))]:
        return max(nums)
    skipped.append({"row": row, "reason": f"{what}={v!r} is not a number; left empty"})
    return math.nan


def _speed(v: str | None, highway: str, row: str, skipped: list[dict]) -> float:
    default = float(DEFAULT_SPEED.get(highway, FALLBACK_SPEED))
    if v is None or v.lower() in {"none", "signals", "variable"}:
        return default
    if m := re.match(r"(\d+(?:\.\d+)?)\s*(mph)?", v):
        return round(float(m[1]) * (1.609344 if m[2] else 1.0), 1)
    if (zone := v.split(":")[-1].strip().lower()) in ZONE_SPEED:
        return float(ZONE_SPEED[zone])
    skipped.append({"row": row, "reason": f"maxspeed={v!r} not understood; {default:g} km/h used"})
    return default


def _streets(net: gpd.GeoDataFrame, skipped: list[dict], noted: list[dict]) -> gpd.GeoDataFrame:
    if net.empty:
        return _empty(["osm_id", "name", "highway", "walk", "drive", "speed_kmh", "oneway"])
    t = {k: _tag(net, k).str.lower() for k in
         ("highway", "access", "foot", "motor_vehicle", "motorcar", "sidewalk", "oneway", "junction")}
    hw, ow, closed = t["highway"].fillna("road"), t["oneway"], t["access"].isin(NO)
    motor = t["motor_vehicle"].fillna(t["motorcar"])
    walk = ~hw.isin(DRIVE_ONLY) | t["sidewalk"].isin({"both", "left", "right", "yes"})
    walk = ((walk & ~closed) | t["foot"].isin(YES)) & ~t["foot"].isin(NO)
    drive = ~hw.isin(WALK_ONLY) & ~(closed & ~motor.isin(YES)) & ~motor.isin(NO)
    speeds = [_speed(v, h, r, noted) if d else math.nan
              for v, h, r, d in zip(_tag(net, "maxspeed"), hw, net["_row"], drive, strict=True)]
    oneway = (ow.isin({"yes", "true", "1", "-1"}) | t["junction"].isin({"roundabout", "circular"})
              | (hw.isin({"motorway", "motorway_link"}) & ow.isna()))
    out = gpd.GeoDataFrame({
        "osm_id": net["id"].astype("int64"), "name": _tag(net, "name"), "highway": hw,
        "walk": walk.astype(bool), "drive": drive.astype(bool), "speed_kmh": pd.Series(speeds, dtype=float),
        "oneway": oneway.astype(bool), "_row": net["_row"],
    }, geometry=net.geometry.where(ow != "-1", net.geometry.reverse()), crs=4326).explode(index_parts=False)
    bad = out.geometry.isna() | out.geometry.is_empty | (out.geom_type != "LineString")
    bad |= shapely.length(out.geometry.values) == 0
    skipped += [{"row": r, "reason": "street geometry is empty or degenerate"} for r in out.loc[bad, "_row"]]
    return out[~bad].drop(columns="_row").reset_index(drop=True)


def _polygonal(g: shapely.Geometry | None) -> shapely.Geometry | None:
    """Valid (repaired) footprint, or None when nothing polygonal with an area survives."""
    if g is None or g.geom_type not in ("Polygon", "MultiPolygon"):
        return None
    if not g.is_valid:
        parts = [p for p in shapely.get_parts(shapely.make_valid(g)) if p.geom_type == "Polygon"]
        g = shapely.union_all(parts) if parts else None
    return g if g is not None and not g.is_empty and g.area > 0 else None


def _buildings(b: gpd.GeoDataFrame, skipped: list[dict], noted: list[dict]) -> gpd.GeoDataFrame:
    if b.empty:
        return _empty(["osm_id", "floors", "use", "year", "address"])
    rows, years = b["_row"], []
    levels = [_number(v, r, "building:levels", noted)
              for v, r in zip(_tag(b, "building:levels"), rows, strict=True)]
    for v, r in zip(_tag(b, "building:year").fillna(_tag(b, "start_date")), rows, strict=True):
        m = re.search(r"(?<!\d)(\d{4})(?!\d)", v) if v else None
        if v and not m:
            noted.append({"row": r, "reason": f"start_date/building:year={v!r} has no 4-digit year"})
        years.append(int(m[1]) if m else None)
    out = gpd.GeoDataFrame({
        "osm_id": b["id"].astype("int64"),
        "floors": pd.array([math.ceil(x) if 0 < x < 200 else None for x in levels], dtype="Int64"),
        "use": pd.Series([None if v is None or v.lower() == "yes" else v for v in _tag(b, "building")],
                         dtype=object),
        "year": pd.array(years, dtype="Int64"), "address": _address(b),
    }, geometry=gpd.GeoSeries([_polygonal(g) for g in b.geometry], crs=4326), crs=4326)
    bad = out.geometry.isna()
    skipped += [{"row": r, "reason": "building footprint is degenerate or not a polygon"} for r in rows[bad]]
    return out[~bad].reset_index(drop=True)


def _facilities(p: gpd.GeoDataFrame, skipped: list[dict], noted: list[dict]) -> gpd.GeoDataFrame:
    if p.empty:
        return _empty(["osm_id", "osm_type", "type_code", "name", "address", "capacity"])
    code, vals = pd.Series(None, index=p.index, dtype=object), {}
    for kv, c in FACILITY_TAGS.items():
        k, v = kv.split("=")
        vals[k] = vals[k] if k in vals else _tag(p, k)
        code = code.where(code.notna() | (vals[k] != v), c)
    heat = (_tag(p, "man_made") == "works") & _tag(p, "product").str.contains("heat", case=False, na=False)
    code = code.where(code.notna() | ~heat, "boiler_house")
    keep = code.notna() & p.geometry.notna() & ~p.geometry.is_empty
    skipped += [{"row": r, "reason": "facility has no geometry"} for r in p["_row"][code.notna() & ~keep]]
    p, code = p[keep], code[keep]
    cap = [_number(v, r, "capacity", noted) for v, r in zip(_tag(p, "capacity"), p["_row"], strict=True)]
    with warnings.catch_warnings():  # centroid in degrees: fine for building-sized shapes
        warnings.simplefilter("ignore", UserWarning)
        return gpd.GeoDataFrame({
            "osm_id": p["id"].astype("int64"), "osm_type": [r.split("/")[0] for r in p["_row"]],
            "type_code": code, "name": _tag(p, "name"), "address": _address(p),
            "capacity": pd.Series(cap, index=p.index, dtype=float),
        }, geometry=p.geometry.centroid, crs=4326).reset_index(drop=True)


def read_osm(path: str | Path, bbox: tuple[float, float, float, float] | None = None,
             progress: Callable[[str], None] | None = None) -> OsmExtract:
    """Streets, buildings and facilities of an OSM PBF, optionally only within a lon/lat bbox."""
    say = progress or (lambda _msg: None)
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"OSM file not found: {path}")
    if bbox is not None:
        try:
            x0, y0, x1, y1 = (float(v) for v in bbox)
        except (TypeError, ValueError) as e:
            raise IngestError(f"bbox must be 4 numbers (minlon, minlat, maxlon, maxlat): {bbox!r}") from e
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            raise IngestError(f"bbox is not a lon/lat box with min < max: {bbox!r}")
        bbox = (x0, y0, x1, y1)
    say(f"checking {path.name}")
    _check_pbf(path)
    filt: dict[str, list[str]] = {"man_made": ["works"]}
    for kv in FACILITY_TAGS:
        filt.setdefault(kv.split("=")[0], []).append(kv.split("=")[1])
    try:  # pyrosm fails in many shapes on odd input; report them all as bad input
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            osm = pyrosm.OSM(str(path), bounding_box=list(bbox) if bbox else None)
            say("reading streets")
            net = _prepare(osm.get_network(network_type="all", extra_attributes=["junction", "motorcar"]))
            say("reading buildings")
            bld = _prepare(osm.get_buildings(extra_attributes=["building:year"]))
            say("reading facilities")
            poi = _prepare(osm.get_pois(custom_filter=filt, extra_attributes=["capacity", "product"]))
    except Exception as e:
        raise IngestError(f"cannot read OSM PBF {path.name}: {type(e).__name__}: {e}") from e
    say("deriving attributes")
    dropped: dict[str, list[dict]] = {"streets": [], "buildings": [], "facilities": []}
    noted: dict[str, list[dict]] = {name: [] for name in dropped}
    ext = OsmExtract(_streets(net, dropped["streets"], noted["streets"]),
                     _buildings(bld, dropped["buildings"], noted["buildings"]),
                     _facilities(poi, dropped["facilities"], noted["facilities"]), dropped=dropped, noted=noted)
    ext.skipped = skipped = [item for name in dropped for item in (*dropped[name], *noted[name])]
    if ext.streets.empty and ext.buildings.empty and ext.facilities.empty:
        where = f" within bbox {bbox}" if bbox else ""
        raise IngestError(f"{path.name} has no streets, buildings or facilities{where}", problems=skipped)
    say(f"{len(ext.streets)} street edges, {len(ext.buildings)} buildings, {len(ext.facilities)} facilities")
    return ext
