"""Parser of Rosreestr cadastral plans of territory (КПТ) into a parcel GeoDataFrame.

Pure: no database. Two XML flavours are read, because both are in circulation:
  * KPT 10.0.1 (root ``KPT``, CamelCase, attributes) - what the repo's sample files are;
  * the newer extract (root ``extract_cadastral_plan_territory``, snake_case elements).
Names are matched by local name (``{*}``) so files with or without namespaces both parse.
Coordinates are in a regional МСК where X is NORTHING and Y is EASTING.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import geopandas
import numpy as np
import pyproj
import shapely
from lxml import etree
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.polygon import orient

from layers.errors import IngestError

CADASTRAL_NUMBER = re.compile(r"^\d{2}:\d{2}:\d{6,7}:\d+$")
DEFAULT_MSK_TABLE = Path(__file__).resolve().parents[2] / "data/cadastre/msk_proj4.csv"
COLUMNS = ["cadastral_number", "valid_number", "land_category_code", "land_category",
           "permitted_use_code", "permitted_use_text", "area_declared_m2", "address"]
# KPT 10.0.1 carries only the dCategories code; the newer extract carries code and text.
LAND_CATEGORIES = {
    "003001000000": "Земли сельскохозяйственного назначения",
    "003002000000": "Земли населенных пунктов",
    "003003000000": "Земли промышленности, энергетики, транспорта, связи и иного специального назначения",
    "003004000000": "Земли особо охраняемых территорий и объектов",
    "003005000000": "Земли лесного фонда",
    "003006000000": "Земли водного фонда",
    "003007000000": "Земли запаса",
    "003008000000": "Категория не установлена",
}
GEOD = pyproj.Geod(ellps="WGS84")
# Declared areas carry a stated inaccuracy of about 1% or less; beyond 2% a record deserves a look.
AREA_TOLERANCE = 0.02
AREA_UNITS = {"055": 1.0, "059": 1e4, "061": 1e6}  # OKEI: m², ha, km²
# Parts of an address that are codes, not words a reader wants to see.
ADDRESS_CODES = {"OKATO", "KLADR", "OKTMO", "FIAS", "PostalCode", "Region", "Note"}
# "СК кадастрового округа" = the district's own МСК, named by the block's first two digits.
DISTRICT_CS = re.compile(r"ск\s+кадастрового\s+округа", re.I)


@dataclass
class KptExtract:
    parcels: geopandas.GeoDataFrame  # CRS EPSG:4326, one row per land record
    problems: list[dict]  # warnings like {"row": cad_number, "reason": "no geometry in extract"}
    coord_system: str  # e.g. "МСК-66 зона 1"
    block: str  # cadastral block number, e.g. "66:41:0302032"


def _canon(name: str) -> str:
    """'МСК - 66, зона 1' and 'мск-66 зона 1' compare equal."""
    name = re.sub(r"\s*-\s*", "-", name.replace(",", " ").replace("ё", "е").lower())
    return re.sub(r"\s+", " ", name).strip()


@lru_cache(maxsize=4)
def _msk_rows(table: str) -> dict[str, str]:
    """canonical 'мск-66 зона 1' (plus variant like '(6 градусная)') -> proj4."""
    rows: dict[str, str] = {}
    with open(table, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            title = row["title"].strip()
            # Title = key + region name; keep the key so the region needn't be typed.
            m = re.match(r"(МСК-[\d.]+(?: от СК-\d+)?(?: зона \d+)?(?: \([^)]*\))?) ", title)
            rows.setdefault(_canon(m.group(1) if m else title), row["proj4"])
            rows.setdefault(_canon(title), row["proj4"])
    return rows


def msk_crs(name: str, msk_table: str | Path | None = None) -> pyproj.CRS:
    """Resolve an МСК name as written in KPT ('МСК - 66, зона 1') to its CRS."""
    rows, key = _msk_rows(str(msk_table or DEFAULT_MSK_TABLE)), _canon(name)
    proj4 = rows.get(key)
    if proj4 is None and " от ск-" in key:
        # Newer extracts write "МСК-26, от СК-95, зона 1"; a region with a single МСК is listed
        # without its origin, so drop it - but only if the table knows no origin variants there.
        number = key.split()[0]
        if not any(k.startswith(number + " от ") for k in rows):
            proj4 = rows.get(re.sub(r" от ск-[\d.]+", "", key))
    if proj4 is None:
        raise IngestError(f"unknown coordinate system '{name}': not in the МСК table")
    return pyproj.CRS.from_proj4(proj4)


def _district_msk(block: str, easting: float, table: str) -> str:
    """Pick 'МСК-NN зона Z' whose false easting has the same millions digit as the data."""
    district = str(int(block[:2]))  # the table writes "МСК-05"; blocks write "05:"
    for key, proj4 in _msk_rows(table).items():
        m = re.fullmatch(rf"мск-0?{district}(?: зона (\d+))?", key)
        x0 = re.search(r"\+x_0=(-?[\d.]+)", proj4)
        if m and x0 and float(x0.group(1)) // 1e6 == easting // 1e6:
            return key.replace("мск", "МСК")
    raise IngestError(f"cannot tell the МСК zone of cadastral district {block[:2]} for easting {easting:.0f}")


def _text(el: etree._Element | None, path: str) -> str | None:
    found = None if el is None else el.find(path)
    # Pretty-printed files wrap long values; collapse the indentation that creeps in.
    return (" ".join(found.text.split()) or None) if found is not None and found.text else None


def _float(text: str | None) -> float | None:
    try:
        return float(text.replace(",", ".")) if text else None
    except ValueError:
        return None


def _ring(spatial_element: etree._Element, new: bool) -> list[tuple[float, float]]:
    """Vertices as (easting, northing) = (Y, X), which is what shapely/pyproj expect."""
    if new:
        return [(float(_text(o, "{*}y")), float(_text(o, "{*}x"))) for o in spatial_element.iter("{*}ordinate")]
    return [(float(o.get("Y")), float(o.get("X"))) for o in spatial_element.iter("{*}Ordinate")]


def _contours(rec: etree._Element, new: bool) -> list[list[etree._Element]]:
    """Each contour as its list of spatial elements: the first is the outer ring, the rest are holes.

    Old format: a single contour sits directly in Parcel/EntitySpatial; multi-contour parcels
    use Contours/Contour, a unified land use (ЕЗП) lists its entries. SubParcels are parts, skip.
    """
    if new:
        paths = ["{*}contours_location/{*}contours/{*}contour/{*}entity_spatial"]
        element = "{*}spatials_elements/{*}spatial_element"
    else:
        paths = ["{*}EntitySpatial", "{*}Contours/{*}Contour/{*}EntitySpatial",
                 "{*}CompositionEZ/{*}EntryParcel/{*}EntitySpatial"]
        element = "{*}SpatialElement"
    return [es.findall(element) for p in paths for es in rec.findall(p)]


def _geometry(rec: etree._Element, new: bool, row: str, problems: list[dict]) -> MultiPolygon | None:
    polygons = []
    for elements in _contours(rec, new):
        rings = [r for r in (_ring(e, new) for e in elements) if len(set(r)) >= 3]
        if len(rings) < len(elements):
            problems.append({"row": row, "reason": "degenerate ring (fewer than 3 vertices) skipped"})
        if rings:
            polygons.append(orient(Polygon(rings[0], rings[1:])))
    if not polygons:
        return None
    geom = MultiPolygon(polygons)
    if not geom.is_valid:
        problems.append({"row": row, "reason": f"invalid geometry: {shapely.is_valid_reason(geom)}"})
    return geom


def _old_record(p: etree._Element) -> dict:
    use = p.find("{*}Utilization")
    use = p.find("{*}LandUse") if use is None else use
    area = p.find("{*}Area")
    value, unit = _text(area, "{*}Area"), _text(area, "{*}Unit") or "055"
    addr = p.find("{*}Location/{*}Address")
    parts = [" ".join(filter(None, (c.get("Type"), c.get("Name") or c.get("Value") or c.text)))
             for c in ([] if addr is None else addr) if etree.QName(c).localname not in ADDRESS_CODES]
    category = _text(p, "{*}Category")
    return {
        "cadastral_number": (p.get("CadastralNumber") or "").strip(),
        "land_category_code": category,
        "land_category": LAND_CATEGORIES.get(category or ""),
        "permitted_use_code": None if use is None else (use.get("Utilization") or use.get("LandUse")),
        "permitted_use_text": None if use is None else use.get("ByDoc"),
        "area_declared_m2": _float(value) * AREA_UNITS[unit] if _float(value) and unit in AREA_UNITS else None,
        "address": _text(addr, "{*}Note") or ", ".join(filter(None, parts)) or None,
    }


def _new_record(r: etree._Element) -> dict:
    use = r.find("{*}params/{*}permitted_use/{*}permitted_use_established")
    area = _text(r, "{*}params/{*}area/{*}value")  # always m² in this format
    return {
        "cadastral_number": _text(r, "{*}object/{*}common_data/{*}cad_number") or "",
        "land_category_code": _text(r, "{*}params/{*}category/{*}type/{*}code"),
        "land_category": _text(r, "{*}params/{*}category/{*}type/{*}value"),
        "permitted_use_code": _text(use, "{*}land_use/{*}code"),
        "permitted_use_text": _text(use, "{*}by_document") or _text(use, "{*}land_use/{*}value"),
        "area_declared_m2": _float(area),
        "address": _text(r, "{*}address_location/{*}address/{*}readable_address"),
    }


def read_kpt(path: str | Path, msk_table: str | Path | None = None) -> KptExtract:
    """Parse one KPT file; per-row defects go to `problems`, file-level defects raise IngestError."""
    path, table = Path(path), str(msk_table or DEFAULT_MSK_TABLE)
    # No entity expansion or network: these files come from users.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as e:
        raise IngestError(f"{path.name}: not a readable XML file ({e})") from e
    kind = etree.QName(root).localname
    if kind not in ("KPT", "extract_cadastral_plan_territory"):
        raise IngestError(f"{path.name}: root element <{kind}> is not a cadastral plan of territory")
    new = kind != "KPT"
    blk = root.find(".//{*}cadastral_block" if new else ".//{*}CadastralBlock")
    if blk is None:
        raise IngestError(f"{path.name}: no cadastral block in the file")
    block = (_text(blk, "{*}cadastral_number") if new else blk.get("CadastralNumber")) or ""
    records = blk.iterfind(".//{*}land_record" if new else "{*}Parcels/{*}Parcel")

    # Coordinate system: old files name it in CoordSystem/@Name, new ones in sk_id text.
    names = [cs.get("Name") or _text(cs, "{*}sk_id") or _text(cs, "{*}name")
             for cs in blk.iter("{*}CoordSystem", "{*}coord_system")]
    names += [e.text.strip() for e in blk.iter("{*}sk_id") if e.text and e.text.strip()]
    names = [n for n in names if n]
    if not names:
        raise IngestError(f"{path.name}: no coordinate system stated in the file")
    if len({_canon(n) for n in names}) > 1:  # one transformer for all rows: refuse rather than misplace
        raise IngestError(f"{path.name}: several coordinate systems {sorted(set(names))} are not supported")
    problems: list[dict] = []
    name = names[0]
    if DISTRICT_CS.search(name):
        first = next(blk.iter("{*}Ordinate", "{*}ordinate"), None)
        if first is None or not re.match(r"\d{2}:", block):
            raise IngestError(f"{path.name}: coordinate system '{name}' cannot be resolved")
        east = float(first.get("Y") if first.get("Y") else _text(first, "{*}y"))
        resolved = _district_msk(block, east, table)
        problems.append({"row": block, "reason": f"coordinate system '{name}' taken as {resolved}"})
        name = resolved
    try:
        crs = msk_crs(name, table)
    except IngestError as e:
        raise IngestError(f"{path.name}: {e.detail}") from e
    to_wgs = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    rows, geoms, seen = [], [], set()
    for rec in records:
        row = _new_record(rec) if new else _old_record(rec)
        number = row["cadastral_number"]
        row["valid_number"] = bool(CADASTRAL_NUMBER.match(number))
        if not row["valid_number"]:
            problems.append({"row": number, "reason": f"invalid cadastral number '{number}'"})
        elif not number.startswith(block + ":"):  # e.g. district-wide pseudo-block NN:NN:0000000
            problems.append({"row": number, "reason": f"registered in block {number.rsplit(':', 1)[0]}"
                             f", listed in the plan of {block}"})
        if number in seen:
            problems.append({"row": number, "reason": "duplicate cadastral number"})
        seen.add(number)
        if row["area_declared_m2"] is None:
            problems.append({"row": number, "reason": "no usable declared area"})
        try:
            geom, reason = _geometry(rec, new, number, problems), "no geometry in extract"
        except (TypeError, ValueError) as e:  # a missing or non-numeric ordinate
            geom, reason = None, f"unreadable coordinates ({e})"
        if geom is None:
            problems.append({"row": number, "reason": reason})
        else:
            geom = shapely.transform(geom, lambda c: np.column_stack(to_wgs.transform(c[:, 0], c[:, 1])))
            declared, actual = row["area_declared_m2"], abs(GEOD.geometry_area_perimeter(geom)[0])
            if declared and abs(actual - declared) > AREA_TOLERANCE * declared:
                problems.append({"row": number, "reason": f"declared area {declared:.0f} m² but the contours "
                                 f"enclose {actual:.0f} m² ({actual / declared - 1:+.1%})"})
        rows.append(row)
        geoms.append(geom)
    frame = geopandas.GeoDataFrame(rows, columns=COLUMNS, geometry=geoms, crs="EPSG:4326")
    text_columns = [c for c in COLUMNS if c not in ("valid_number", "area_declared_m2")]
    frame[text_columns] = frame[text_columns].astype(object).where(frame[text_columns].notna(), None)
    return KptExtract(frame, problems, _canon(name).replace("мск", "МСК"), block)
