"""The data dictionary of the exports (GET /exports/dictionary): every collection's columns from the registry, the
indicator and balance columns and the balance's row and column codes, from the very objects layers/exports.py
writes with, so it cannot drift from the files."""

from __future__ import annotations

from energy import layout
from layers import registry
from layers.crs import CRS84
from layers.exports import (
    BALANCE_COLUMNS,
    BALANCE_FORMATS,
    BOUNDARY,
    INDICATOR_KEYS,
    INDICATOR_LONG,
    columns_of,
    geometry_of,
)
from layers.exports_writers import FORMATS, Column, Export, Geometry

NOTES = [
    "Column names are stable: `id` first, the registry's property names in registry order, geometry last.",
    "CSV and XLSX carry the geometry as WKT in `geometry_wkt` (x = east, y = north, in the requested crs; CRS84 by "
    "default); GeoJSON, GeoPackage and Parquet (GeoParquet 1.0, WKB) in `geometry`.",
    "XLSX leaves `geometry_wkt` empty where the WKT is longer than Excel's 32,767-character cell limit.",
    "Dates and times are ISO 8601 (times in UTC) in CSV, XLSX and GeoJSON; typed in Parquet and GeoPackage.",
    "Arrays and objects are JSON text; numbers are float64, integers int64.",
    "CSV is UTF-8 with a byte-order mark (Excel), comma-separated, RFC 4180 quoting.",
]


def _geometry_columns(geometry: Geometry | None) -> dict:
    if geometry is None:
        return {}
    return {f.name: {"name": f.geometry_column, "encoding": f.geometry_encoding, "type": geometry.type}
            for f in FORMATS.values()}


def dictionary() -> dict:
    """Every export's columns, generated from the registry and the code that writes them (so it cannot drift)."""
    out = []
    for layer in registry.all_layers():
        geometry = geometry_of(layer, CRS84)
        out.append({"name": layer.name, "title": layer.title, "description": layer.description,
                    "access": layer.access, "url": f"/exports/collections/{layer.name}",
                    "files": {f: f"{layer.name}.{FORMATS[f].ext}" for f in FORMATS},
                    "columns": [c.as_dict() for c in columns_of(layer)], "geometry": _geometry_columns(geometry)})
    return {
        "collections": out,
        "indicators": {"url": "/exports/indicators", "definitions": "/indicators",
                       "files": {f: f"indicators_<layout>.{FORMATS[f].ext}" for f in FORMATS},
                       "long": [c.as_dict() for c in INDICATOR_LONG],
                       "wide": [c.as_dict() for c in INDICATOR_KEYS] + [
                           {"name": "<indicator code>", "type": "number", "nullable": True,
                            "title": "One column per indicator code", "description": "Definitions: /indicators",
                            "unit": "the indicator's unit"}],
                       "geometry": _geometry_columns(BOUNDARY)},
        "balances": {"url": "/exports/balances/{balanceId}", "files": {f: f"balance_<id>.{FORMATS[f].ext}"
                                                                       for f in BALANCE_FORMATS},
                     "columns": [c.as_dict() for c in BALANCE_COLUMNS],
                     "rows": [{"code": r.code, "number": r.number, "label_ru": r.ru, "label_en": r.en,
                               "parent": r.parent} for r in layout.ROW_DEFS],
                     "columns_codes": [{"code": c.code, "number": c.number, "label_ru": c.ru, "label_en": c.en}
                                       for c in layout.COLUMN_DEFS]},
        "notes": NOTES,
    }


def dictionary_rows() -> list[tuple]:
    """The dictionary flattened for CSV/XLSX: dataset, column, type, nullable, title, description, unit."""
    d = dictionary()
    rows = []
    for c in d["collections"]:
        rows += [(c["name"], *col.values()) for col in c["columns"]]
        if c["geometry"]:
            rows.append((c["name"], "geometry / geometry_wkt", "geometry", True, c["geometry"]["csv"]["type"],
                         "WKT in CSV and XLSX, GeoJSON / WKB elsewhere", None))
    rows += [("indicators (long)", *col.values()) for col in d["indicators"]["long"]]
    rows += [("indicators (wide)", *col.values()) for col in d["indicators"]["wide"]]
    rows += [("balances", *col.values()) for col in d["balances"]["columns"]]
    return rows


DICTIONARY_COLUMNS = [Column(n, k) for n, k in (("dataset", "string"), ("name", "string"), ("type", "string"),
                                                ("nullable", "boolean"), ("title", "string"),
                                                ("description", "string"), ("unit", "string"))]


def dictionary_export() -> Export:
    return Export("dictionary", DICTIONARY_COLUMNS, None, lambda _enc: iter([dictionary_rows()]))
