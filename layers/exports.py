"""Exports of a collection, indicator values or a fuel and energy balance (writers: layers/exports_writers.py).

A collection is read with the same WHERE as OGC API items (`layers.features`: bbox, datetime, property filters,
CQL2, and the caller's read rule from `layers.access`) and the same order (sortby, then id), from a server-side
cursor in chunks of CHUNK rows: PostGIS encodes each geometry (ST_AsText / ST_AsGeoJSON / ST_AsBinary), so memory
stays flat however many rows there are. Indicator values and balances are small (territories x indicators x
years; 35 x 10 cells) and are read whole.

Stable columns: `id` first, then the registry's property names in registry order, geometry last (`geometry_wkt`
in CSV and XLSX, `geometry` elsewhere); integers stay integers, numbers are float64, dates and times ISO 8601
(UTC) in text formats, arrays and objects JSON text. `layers.exports_dictionary` describes all of it from the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, text

from energy import layout
from layers import features
from layers.crs import STORAGE_SRID, Crs
from layers.errors import InvalidParameterValue, NotFound
from layers.exports_writers import FORMATS, Column, Export, Geometry
from layers.features import ItemsQuery
from layers.registry import Layer

CHUNK = 1000
# Units read from a property name's suffix (the registry names its columns so: area_m2, length_m ...).
UNIT_SUFFIXES = (("_people_ha", "people/ha"), ("_per_1000", "per 1000 residents"), ("_m2", "m²"), ("_mm", "mm"),
                 ("_kv", "kV"), ("_kmh", "km/h"), ("_pct", "%"), ("_min", "min"), ("_m", "m"))
KINDS = {"array": "json", "object": "json"}


def unit_of(name: str, info: dict) -> str | None:
    if info.get("unit"):
        return info["unit"]
    if name == "score_15min":
        return "points (0-100)"
    return next((u for suffix, u in UNIT_SUFFIXES if name.endswith(suffix)), None)


def columns_of(layer: Layer, selected: list[str] | None = None) -> list[Column]:
    """`id`, then the properties (all, or the selected ones) in registry order: the order never depends on the
    request, so a BI model keeps its columns."""
    props = features.properties(layer)
    wanted = set(selected) if selected is not None else set(props)
    out = [Column("id", "integer", False, "Feature id", "The feature's id in /collections/{id}/items/{featureId}")]
    for name, p in props.items():
        if name in wanted:
            info = getattr(p.column, "info", None) or {}
            out.append(Column(name, KINDS.get(p.kind, p.kind), p.nullable, info.get("title"),
                              info.get("description") or getattr(p.column, "comment", None), unit_of(name, info)))
    return out


def geometry_of(layer: Layer, crs: Crs) -> Geometry | None:
    if not layer.geometry_column:
        return None
    if crs.proj:
        return Geometry(layer.geometry_type, crs.proj, False)
    return Geometry(layer.geometry_type, f"EPSG:{crs.srid}", crs.srid == STORAGE_SRID)


def file_crs(crs: Crs) -> Crs:
    """Files (WKT, WKB, GeoPackage, GeoParquet) keep x = east, y = north whatever the CRS's axis order."""
    return dataclasses.replace(crs, lat_lon=False) if crs.lat_lon else crs


def geometry_sql(expr: str, encoding: str, crs: Crs) -> tuple[str, dict]:
    """The geometry as the format needs it, written by PostGIS. GeoJSON follows the CRS's axis order as the items
    do; 9 decimals (0.1 mm in degrees) keep it equal to the source within 1e-9."""
    geom, params = (crs if encoding == "geojson" else file_crs(crs)).from_storage(expr)
    sql = {"wkt": f"ST_AsText({geom})", "wkb": f"ST_AsBinary({geom})", "geojson": f"ST_AsGeoJSON({geom}, 9, 0)"}
    return sql[encoding], params


def _select(layer: Layer, q: ItemsQuery, cols: list[Column]) -> tuple[str, str, dict]:
    """SELECT list (without geometry), FROM ... WHERE, and the ORDER BY, with their parameters."""
    props = features.properties(layer)
    select = ", ".join("t.id" if c.name == "id" else f'{props[c.name].sql}::float8 AS "{c.name}"'
                       if c.kind == "number" else props[c.name].sql for c in cols)
    # The very WHERE of /collections/{id}/items: filters and the read rule in one place.
    clauses, params = features.where_clauses(layer, q, props)  # the items' filters and read rule
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    order = ", ".join(f'{props[n].sql if n != "id" else "t.id"} {"ASC" if asc else "DESC"} NULLS LAST'
                      for n, asc in q.sortby)
    order = (order + ", " if order else "") + "t.id"
    return select, f"FROM {layer.qualified_table} t{where}", {**params, "_order": order}


def stream_rows(engine: Engine, sql: str, params: dict, chunk: int = CHUNK) -> Iterator[list[tuple]]:
    """Rows from a server-side cursor, `chunk` at a time; the connection closes when the generator does. The cursor
    needs a transaction, so `engine` is not the autocommit reader: a read-only repeatable-read one, so the whole file
    is one snapshot however long the client takes."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")  # times are written in UTC, whatever the server's zone
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(text(sql), params)
        for part in result.partitions(chunk):
            yield [tuple(r) for r in part]


def count_at_most(conn: Connection, layer: Layer, q: ItemsQuery, cap: int) -> int:
    """How many rows the export has, counting no further than `cap` (so a refusal is cheap)."""
    _, from_where, params = _select(layer, q, [])
    params.pop("_order")
    return conn.execute(text(f"SELECT count(*) FROM (SELECT 1 {from_where} LIMIT {int(cap)}) c"), params).scalar()


def collection(engine: Engine, layer: Layer, q: ItemsQuery, limit: int | None = None, offset: int = 0) -> Export:
    """The collection as `q` filters it (q.scope: the caller's read rule); every row unless `limit`."""
    cols = columns_of(layer, q.properties)
    select, from_where, params = _select(layer, q, cols)
    order = params.pop("_order")
    page = (f" LIMIT {int(limit)}" if limit is not None else "") + (f" OFFSET {int(offset)}" if offset else "")
    geometry = None if q.skip_geometry else geometry_of(layer, q.crs)

    def rows(encoding: str | None) -> Iterator[list[tuple]]:
        extra, gparams = "", {}
        if geometry is not None and encoding is not None:
            gsql, gparams = geometry_sql(f't."{layer.geometry_column}"', encoding, q.crs)
            extra = f", {gsql}"
        return stream_rows(engine, f"SELECT {select}{extra} {from_where} ORDER BY {order}{page}",
                           {**params, **gparams})

    return Export(layer.name, cols, geometry, rows, feature_id="id")


# --- indicators -------------------------------------------------------------------------------------------
INDICATOR_KEYS = [
    Column("territory_oktmo", "string", False, "Territory OKTMO"),
    Column("territory_name", "string", False, "Territory name"),
    Column("territory_level", "string", True, "Territory level"),
    Column("year", "integer", False, "Year"),
    Column("period", "date", False, "First day of the period"),
    Column("value_type", "string", False, "actual, forecast or target"),
    Column("scenario_id", "integer", True, "Scenario (empty: base values)"),
]
INDICATOR_LONG = [
    Column("indicator_code", "string", False, "Indicator code", "Definition: /indicators/{code}"),
    Column("indicator_name_ru", "string", False, "Indicator name (ru)"),
    Column("indicator_name_en", "string", False, "Indicator name (en)"),
    Column("unit", "string", False, "Unit of the value"),
    Column("family", "string", True, "Indicator family"),
    *INDICATOR_KEYS,
    Column("value", "number", True, "Value", "In the indicator's unit"),
    Column("source", "string", False, "Where the value comes from (computed, rosstat-bdmo:<file>, manual ...)"),
]
BOUNDARY = Geometry("MULTIPOLYGON", "EPSG:4326", True)


@dataclasses.dataclass(frozen=True)
class IndicatorQuery:
    codes: tuple[str, ...] = ()  # exactly these (wide: one column each, in this order)
    year: int | None = None
    territory_ids: tuple[int, ...] | None = None
    value_type: str | None = None
    scenario_id: int | None = None
    layout: str = "long"
    # Codes whose values the caller may see in some territories only (planning.indicators.access): code -> ids.
    scoped: tuple[tuple[str, tuple[int, ...]], ...] = ()


def _indicator_rows(conn: Connection, q: IndicatorQuery, encoding: str | None) -> list[tuple]:
    geom = {"wkt": "ST_AsText(t.boundary)", "wkb": "ST_AsBinary(t.boundary)",
            "geojson": "ST_AsGeoJSON(t.boundary, 9, 0)"}.get(encoding or "", "NULL")
    sql = f"""
        SELECT v.indicator_code, d.name_ru, d.name_en, d.unit, d.family, t.oktmo, t.name, t.level,
               extract(year FROM v.period)::int, v.period, v.value_type, v.scenario_id, v.value, v.source, {geom}
        FROM cdt.indicator_values v JOIN cdt.indicators d ON d.code = v.indicator_code
        JOIN cdt.territories t ON t.id = v.territory_id
        WHERE v.indicator_code = ANY(CAST(:codes AS text[]))
          AND (CAST(:period AS date) IS NULL OR v.period = :period)
          AND (CAST(:tids AS int[]) IS NULL OR v.territory_id = ANY(CAST(:tids AS int[])))
          AND (CAST(:vt AS text) IS NULL OR v.value_type = :vt)
          AND v.scenario_id IS NOT DISTINCT FROM CAST(:sc AS int)
          AND (NOT v.indicator_code = ANY(CAST(:scoped AS text[])) OR EXISTS (
               SELECT 1 FROM unnest(CAST(:pc AS text[]), CAST(:pt AS int[])) AS x(c, t)
               WHERE x.c = v.indicator_code AND x.t = v.territory_id))
        ORDER BY v.indicator_code, t.oktmo, v.period, v.value_type"""
    from planning.indicators.store import period_of

    params = {"codes": list(q.codes), "period": period_of(q.year) if q.year else None,
              "tids": list(q.territory_ids) if q.territory_ids is not None else None, "vt": q.value_type,
              "sc": q.scenario_id, "scoped": [c for c, _ in q.scoped],
              "pc": [c for c, ids in q.scoped for _ in ids], "pt": [i for _, ids in q.scoped for i in ids]}
    return [tuple(r) for r in conn.execute(text(sql), params)]


def indicators(engine: Engine, q: IndicatorQuery) -> Export:
    codes = list(q.codes)  # the caller decides which codes (the ones the user may see: planning.indicators.access)
    with engine.connect() as conn:
        units = dict(conn.execute(text("SELECT code, unit FROM cdt.indicators WHERE code = ANY(:c)"),
                                  {"c": codes}).all())
    name = f"indicators_{q.layout}"

    def read(encoding: str | None) -> list[tuple]:
        with engine.connect() as conn:
            return _indicator_rows(conn, q, encoding)

    if q.layout == "long":
        def long_rows(encoding: str | None) -> Iterator[list[tuple]]:
            rows = read(encoding)
            yield [r if encoding else r[:-1] for r in rows]

        return Export(name, INDICATOR_LONG, BOUNDARY, long_rows)
    cols = INDICATOR_KEYS + [Column(c, "number", True, c, "Definition: /indicators/" + c, units.get(c))
                             for c in codes]
    return Export(name, cols, BOUNDARY, lambda encoding: iter([_wide(read(encoding), codes, encoding)]))


def _wide(rows: list[tuple], codes: list[str], encoding: str | None) -> list[tuple]:
    """One row per territory x period x value type x scenario, one column per indicator code."""
    at = {c: i for i, c in enumerate(codes)}
    out: dict[tuple, list] = {}
    for r in rows:
        key = r[5:12]  # oktmo, name, level, year, period, value type, scenario
        line = out.setdefault(key, [None] * len(codes) + [r[14]])
        line[at[r[0]]] = r[12]
    return [(*k, *v) if encoding else (*k, *v[:-1]) for k, v in sorted(out.items(), key=lambda kv: kv[0][:6])]


# --- balances ---------------------------------------------------------------------------------------------
BALANCE_COLUMNS = [
    Column("balance_id", "integer", False, "Balance id", "/energy/balances/{id}"),
    Column("territory_oktmo", "string", False, "Territory OKTMO"),
    Column("year", "integer", False, "Year"),
    Column("kind", "string", False, "actual or forecast"),
    Column("row_code", "string", False, "Row code (Order 1169)"),
    Column("row_number", "string", False, "Row number in the Order's form"),
    Column("row_label_ru", "string", False, "Row label (ru)"),
    Column("row_label_en", "string", False, "Row label (en)"),
    Column("column_code", "string", False, "Column code (carrier)"),
    Column("column_number", "integer", False, "Column number in the Order's form"),
    Column("column_label_ru", "string", False, "Column label (ru)"),
    Column("column_label_en", "string", False, "Column label (en)"),
    Column("value_tce", "number", True, "Value", unit="thousand tce"),
    Column("provenance_source", "string", True, "Where the cell comes from (workbook, forms, reconciliation ...)"),
]


def balance(engine: Engine, balance_id: int) -> Export:
    """The balance's stored cells in long form, in the Order's row and column order."""
    with engine.connect() as conn:
        meta = conn.execute(text("SELECT territory_oktmo, year, kind FROM cdt.fuel_balances WHERE id = :b"),
                            {"b": balance_id}).first()
        if meta is None:
            raise NotFound(f"no fuel balance with id {balance_id}")
        cells = conn.execute(text("SELECT row_code, column_code, value_tce, provenance->>'source' "
                                  "FROM cdt.balance_cells WHERE balance_id = :b"), {"b": balance_id}).all()
    rank_r = {c: i for i, c in enumerate(layout.ROWS)}
    rank_c = {c: i for i, c in enumerate(layout.COLUMNS)}
    known = [c for c in cells if c[0] in rank_r and c[1] in rank_c]
    known.sort(key=lambda c: (rank_r[c[0]], rank_c[c[1]]))
    rows = []
    for r, c, value, source in known:
        row, col = layout.ROW[r], layout.COLUMN[c]
        rows.append((balance_id, meta.territory_oktmo, meta.year, meta.kind, r, row.number, row.ru, row.en, c,
                     col.number, col.ru, col.en, value, source))
    return Export(f"balance_{balance_id}", BALANCE_COLUMNS, None, lambda _enc: iter([rows]))


BALANCE_FORMATS = ("csv", "xlsx", "parquet")


def check_format(name: str, allowed: tuple[str, ...] = tuple(FORMATS)) -> None:
    if name not in allowed:
        raise InvalidParameterValue(f"format={name} is not offered here; use one of {', '.join(allowed)}")
