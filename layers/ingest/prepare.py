"""Turn a read file into rows of a target layer: column mapping, types, geometry checks.

Everything here refuses bad input before a single row reaches the database:
an unknown column, a value of the wrong type or an invalid geometry stops the load
with the list of offending features; missing geometries are skipped and reported.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Boolean, Float, Integer
from sqlalchemy.types import ARRAY

from layers.errors import IngestError
from layers.ingest.report import LoadReport
from layers.registry import Layer

GEOMETRY_FAMILY = {"MULTIPOLYGON": "Polygon", "POINT": "Point", "LINESTRING": "LineString",
                   "MULTILINESTRING": "LineString"}
TRUE_WORDS = {"true", "t", "yes", "y", "1", "да"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "нет"}


def parse_assignments(pairs: tuple[str, ...] | list[str], what: str) -> dict[str, str]:
    """`field=value` pairs from the command line."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise IngestError(f"{what} '{pair}' must look like field=value")
        out[name.strip()] = value.strip()
    return out


def prepare(
    gdf: gpd.GeoDataFrame,
    layer: Layer,
    report: LoadReport,
    *,
    source: str,
    mapping: dict[str, str] | None = None,
    constants: dict[str, object] | None = None,
    key: str | None = None,
    repair: bool = False,
) -> pd.DataFrame:
    mapping = dict(mapping or {})
    constants = dict(constants or {})
    fields = layer.writable_columns
    unknown = [t for t in [*mapping, *constants] if t not in fields]
    if unknown:
        raise IngestError(f"layer '{layer.name}' has no field(s) {', '.join(unknown)}; its fields are: "
                          f"{', '.join(f for f in fields if f != layer.geometry_column)}")
    missing = [s for s in mapping.values() if s not in gdf.columns]
    if key and key not in gdf.columns:
        missing.append(key)
    if missing:
        raise IngestError(f"column(s) {', '.join(missing)} not in the file; its columns are: "
                          f"{', '.join(c for c in gdf.columns if c != gdf.geometry.name)}")
    # A file column named like a layer field maps to it unless mapped explicitly.
    for col in gdf.columns:
        if col in fields and col not in mapping and col not in constants and col != layer.geometry_column:
            mapping[col] = col

    out = pd.DataFrame(index=gdf.index)
    for target, src in mapping.items():
        out[target] = gdf[src]
    for target, value in constants.items():
        out[target] = value
    if layer.natural_key == ("source", "source_id"):
        out["source"] = source
        ids = gdf[key] if key else pd.Series(gdf.index, index=gdf.index)
        out["source_id"] = ids.map(_key_text)
    labels = _row_labels(out, layer)
    _check_keys(out, layer, labels)
    problems = _coerce_types(out, layer, labels)
    if problems:
        raise IngestError(f"{len(problems)} value(s) of the wrong type", problems)
    if layer.geometry_column:
        out = _geometries(gdf.geometry, out, layer, labels, report, repair)
    return out


def _key_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _row_labels(out: pd.DataFrame, layer: Layer) -> pd.Series:
    """How a feature is named in reports: its natural key when it has one."""
    key_cols = [k for k in layer.natural_key if k != "source" and k in out.columns]
    labels = out[key_cols[0]].astype(str) if key_cols else pd.Series([str(i) for i in out.index], index=out.index)
    if "name" in out.columns:
        named = out["name"].notna()
        labels[named] = labels[named] + " (" + out.loc[named, "name"].astype(str) + ")"
    return labels


def _check_keys(out: pd.DataFrame, layer: Layer, labels: pd.Series) -> None:
    key_cols = [k for k in layer.natural_key if k in out.columns]
    if not key_cols:
        return
    empty = out[key_cols[-1]].isna()
    if empty.any():
        raise IngestError(f"{int(empty.sum())} feature(s) without a key ({key_cols[-1]})",
                          [{"row": int(i) if isinstance(i, (int, np.integer)) else str(i),
                            "reason": "empty key"} for i in out.index[empty][:100]])
    dup = out.duplicated(key_cols, keep=False)
    if dup.any():
        raise IngestError(f"{int(dup.sum())} feature(s) share a key ({', '.join(key_cols)}); keys must be unique",
                          [{"row": labels[i], "reason": "duplicate key"} for i in out.index[dup][:100]])


def _show(value: object) -> str:
    """A value as the user wrote it, not as numpy spells it (np.float64(1.5))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def check_types(out: pd.DataFrame, layer: Layer) -> None:
    """Coerce `out` in place to the layer's column types; refuse the load with a report of each bad value."""
    problems = _coerce_types(out, layer, _row_labels(out, layer))
    if problems:
        raise IngestError(f"{len(problems)} value(s) of the wrong type", problems)


def _coerce_types(out: pd.DataFrame, layer: Layer, labels: pd.Series) -> list[dict]:
    problems: list[dict] = []
    for col in out.columns:
        sa_type = layer.table.columns[col].type
        values = out[col]
        if isinstance(sa_type, (Integer, Float)):
            numbers = pd.to_numeric(values, errors="coerce")
            bad = numbers.isna() & values.notna() & (values.astype(str).str.strip() != "")
            if isinstance(sa_type, Integer):
                fractional = numbers.notna() & (numbers.round() != numbers)
                problems += [{"row": labels[i], "reason": f"{col}: {_show(values[i])} is not a whole number"}
                             for i in out.index[fractional]]
                numbers = numbers.round().astype("Int64")
            problems += [{"row": labels[i], "reason": f"{col}: {_show(values[i])} is not a number"}
                         for i in out.index[bad]]
            out[col] = numbers
        elif isinstance(sa_type, Boolean):
            # A 0/1 column with gaps is read as floats (1.0, 0.0, NaN): 1.0 means 1.
            text = values.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                              else str(int(v)) if isinstance(v, float) and v.is_integer()
                              else str(v).strip().lower())
            bad = text.notna() & ~text.isin(TRUE_WORDS | FALSE_WORDS)
            problems += [{"row": labels[i], "reason": f"{col}: {_show(values[i])} is not true/false"}
                         for i in out.index[bad]]
            # pandas may hold the missing texts as NaN rather than None: missing stays unknown, not false.
            out[col] = text.map(lambda t: None if pd.isna(t) else t in TRUE_WORDS).astype(object)
        elif isinstance(sa_type, ARRAY):
            out[col] = values.map(_text_list)
        elif col != layer.geometry_column:
            out[col] = values.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                                  else str(v))
    return problems[:500]


def _text_list(value: object) -> list[str] | None:
    """A list field from a list (GeoParquet gives arrays) or from comma-separated text; NaN is missing."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return [s.strip() for s in str(value).split(",") if s.strip()]


def _geometries(geoms: gpd.GeoSeries, out: pd.DataFrame, layer: Layer, labels: pd.Series,
                report: LoadReport, repair: bool) -> pd.DataFrame:
    values = geoms.values
    absent = shapely.is_missing(values) | shapely.is_empty(values)
    if absent.any() and layer.geometry_required:
        for i in out.index[absent]:
            report.skip(labels[i], "no geometry")
        out, values, labels = out[~absent], values[~absent], labels[~absent]
        absent = np.zeros(len(out), dtype=bool)
    values = np.asarray(values, dtype=object)
    present = ~absent
    problems = []
    invalid = present & ~shapely.is_valid(values)
    if invalid.any():
        if repair:
            fixed = shapely.make_valid(values[invalid])
            for idx, g in zip(np.flatnonzero(invalid), fixed, strict=True):
                report.warn(labels.iloc[idx], f"geometry repaired ({shapely.is_valid_reason(values[idx])})")
                values[idx] = _keep_family(g, layer.geometry_type)
        else:
            problems += [{"row": labels.iloc[idx],
                          "reason": f"invalid geometry: {shapely.is_valid_reason(values[idx])}"}
                         for idx in np.flatnonzero(invalid)]
    family = GEOMETRY_FAMILY.get(layer.geometry_type or "")
    if family:
        for idx in np.flatnonzero(present):
            g = values[idx]
            if g is None or problems and not shapely.is_valid(g):
                continue
            if g.geom_type.replace("Multi", "") != family:
                problems.append({"row": labels.iloc[idx],
                                 "reason": f"{g.geom_type} where layer '{layer.name}' stores {layer.geometry_type}"})
            else:
                values[idx] = _normalise(g, layer.geometry_type)
                if layer.geometry_type in ("LINESTRING", "POINT") and values[idx].geom_type.startswith("Multi"):
                    problems.append({"row": labels.iloc[idx], "reason": f"{g.geom_type} with several disjoint parts "
                                     f"where layer '{layer.name}' stores single {layer.geometry_type}s"})
    if problems:
        raise IngestError(f"{len(problems)} feature(s) with bad geometry; nothing was loaded "
                          "(pass --repair to repair invalid geometries)", problems[:500])
    for idx in np.flatnonzero(present):
        if values[idx] is None or shapely.is_empty(values[idx]):
            report.skip(labels.iloc[idx], "geometry empty after repair")
    keep = np.array([v is not None and not shapely.is_empty(v) for v in values]) | ~present
    out = out[keep].copy()
    out[layer.geometry_column] = values[keep]
    return out


def _keep_family(geom, geometry_type: str | None):
    """make_valid may return a collection; keep the parts of the layer's dimension."""
    family = GEOMETRY_FAMILY.get(geometry_type or "")
    if not family or geom.geom_type != "GeometryCollection":
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type.replace("Multi", "") == family]
    parts = [q for p in parts for q in shapely.get_parts(p)]
    if not parts:
        return None
    return shapely.union_all(parts)


def _normalise(geom, geometry_type: str | None):
    if geometry_type == "MULTIPOLYGON" and geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geometry_type == "MULTILINESTRING" and geom.geom_type == "LineString":
        return shapely.MultiLineString([geom])
    if geometry_type == "POINT" and geom.geom_type == "MultiPoint" and len(geom.geoms) == 1:
        return geom.geoms[0]
    if geometry_type == "LINESTRING" and geom.geom_type == "MultiLineString":
        merged = shapely.line_merge(geom)
        return merged if merged.geom_type == "LineString" else geom
    return geom
