"""Reading features of a collection: the SQL behind OGC API Features items.

PostGIS writes the GeoJSON: each feature is assembled as text by `ST_AsGeoJSON` and
`json_build_object`, the page by `string_agg`, and the count in the same round trip, so
Python only wraps a ready byte string. Every value from a request is a bound parameter;
identifiers come from the registry only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from geoalchemy2 import Geometry
from sqlalchemy import ARRAY, BigInteger, Boolean, Connection, Date, DateTime, Float, Integer, Numeric, TextClause, text
from sqlalchemy.dialects.postgresql import JSONB

from layers import crs as crs_mod
from layers import registry
from layers.access import ReadRule
from layers.crs import Crs
from layers.errors import InvalidParameterValue, NotFound
from layers.registry import Layer

NUMBER_MATCHED_MODES = ("exact", "estimated", "off", "auto")
# "auto": exact up to this many matches, the planner's estimate beyond it.
AUTO_EXACT_UP_TO = 100_000


# Keys of a column's `info` that go into its JSON Schema (and that `layers.edits` enforces).
SCHEMA_INFO_KEYS = ("title", "description", "enum", "examples", "minimum", "maximum", "maxLength")


@dataclass(frozen=True)
class Property:
    name: str
    kind: str  # integer | number | string | boolean | datetime | date | array | object | geometry
    nullable: bool
    writable: bool
    column: object = field(repr=False, compare=False, default=None)

    @property
    def sql(self) -> str:
        return f't."{self.name}"'

    def json_schema(self) -> dict:
        base = {"integer": {"type": "integer"}, "number": {"type": "number"}, "string": {"type": "string"},
                "boolean": {"type": "boolean"}, "datetime": {"type": "string", "format": "date-time"},
                "date": {"type": "string", "format": "date"}, "array": {"type": "array", "items": {"type": "string"}},
                "object": {"type": "object"}}[self.kind]
        out = {"title": self.name, **base}
        # Column `info` adds what a form needs: a human title, allowed values, suggested values, bounds.
        info = getattr(self.column, "info", None) or {}
        out.update({k: info[k] for k in SCHEMA_INFO_KEYS if k in info})
        default = getattr(getattr(self.column, "server_default", None), "arg", None)
        if self.writable and isinstance(default, str) and self.kind == "string":
            out["default"] = default  # what the database puts when a new feature leaves it out
        if self.nullable:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        if not self.writable:
            out["readOnly"] = True
        return out


def _kind(sa_type) -> str:
    if isinstance(sa_type, Geometry):
        return "geometry"
    if isinstance(sa_type, (Integer, BigInteger)):
        return "integer"
    if isinstance(sa_type, (Float, Numeric)):
        return "number"
    if isinstance(sa_type, Boolean):
        return "boolean"
    if isinstance(sa_type, DateTime):
        return "datetime"
    if isinstance(sa_type, Date):
        return "date"
    if isinstance(sa_type, ARRAY):
        return "array"
    if isinstance(sa_type, JSONB):
        return "object"
    return "string"


_PROPERTIES: dict[str, dict[str, Property]] = {}


def properties(layer: Layer) -> dict[str, Property]:
    """The collection's properties: every column but the id and the geometries (computed once per layer)."""
    if layer.name not in _PROPERTIES:
        _PROPERTIES[layer.name] = _properties(layer)
    return _PROPERTIES[layer.name]


def _properties(layer: Layer) -> dict[str, Property]:
    writable = set(layer.writable_columns)
    out = {}
    for col in layer.table.columns:
        kind = _kind(col.type)
        if col.name == "id" or kind == "geometry":
            continue
        out[col.name] = Property(col.name, kind, bool(col.nullable), col.name in writable, col)
    return out


# Lookup tables whose keys are a property's only allowed values (enforced by a foreign key).
VOCABULARY_TABLES = frozenset({"facility_types"})


def vocabularies(conn: Connection, layer: Layer) -> dict[str, list[str]]:
    """Allowed values of the properties that reference a vocabulary table (e.g. type_code: school, ...)."""
    out = {}
    for name, prop in properties(layer).items():
        for fk in getattr(prop.column, "foreign_keys", ()):
            if fk.column.table.name in VOCABULARY_TABLES:
                table = f"{fk.column.table.schema}.{fk.column.table.name}"
                out[name] = list(conn.execute(text(f"SELECT {fk.column.name} FROM {table} ORDER BY 1")).scalars())
    return out


def datetime_property(layer: Layer) -> str | None:
    """The property `datetime=` filters on: the time of the last change (all CDT layers carry it)."""
    return "updated_at" if "updated_at" in layer.table.columns else None


@dataclass
class ItemsQuery:
    crs: Crs = crs_mod.CRS84
    bbox: list[float] | None = None
    bbox_crs: Crs = crs_mod.CRS84
    limit: int = 10
    offset: int = 0
    datetime: tuple[datetime | None, datetime | None] | None = None
    equals: dict[str, str] = field(default_factory=dict)
    filter: tuple[str, dict] | None = None  # compiled CQL2 (sql, params)
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (property, ascending)
    properties: list[str] | None = None
    skip_geometry: bool = False
    number_matched: str = "auto"
    # What the caller may read (layers/access.py): None or a rule without SQL means every row.
    scope: ReadRule | None = None


@dataclass
class Page:
    features: str  # the features as a JSON array body, without brackets
    returned: int
    matched: int | None


def _feature_sql(layer: Layer, props: list[str], out_crs: Crs, skip_geometry: bool) -> tuple[str, dict]:
    params: dict = {}
    if layer.geometry_column and not skip_geometry:
        geom, params = out_crs.from_storage(f't."{layer.geometry_column}"')
        # options 0: no "crs" member inside the geometry (the Content-Crs header says it)
        geometry = f"coalesce(ST_AsGeoJSON({geom}, {out_crs.decimals}, 0), 'null')"
    else:
        geometry = "'null'"
    # row_to_json writes compact JSON and takes any number of columns.
    cols = ", ".join(f't."{p}"' for p in props)
    props_sql = f"(SELECT row_to_json(r) FROM (SELECT {cols}) r)" if props else "'{}'"
    return (f"""'{{"type":"Feature","id":' || t.id || ',"geometry":' || {geometry} || ',"properties":' || """
            f"""{props_sql}::text || '}}'"""), params


def where_clauses(layer: Layer, q: ItemsQuery, props: dict[str, Property]) -> tuple[list[str], dict]:
    clauses: list[str] = []
    params: dict = {}
    if q.bbox:
        if not layer.geometry_column:
            raise InvalidParameterValue(f"collection {layer.name} has no geometry; bbox does not apply")
        env, env_params = _envelope(q.bbox, q.bbox_crs)
        clauses.append(f't."{layer.geometry_column}" && {env} AND ST_Intersects(t."{layer.geometry_column}", {env})')
        params.update(env_params)
    if q.datetime:
        column = datetime_property(layer)
        start, end = q.datetime
        if start is not None:
            clauses.append(f't."{column}" >= :dt_start')
            params["dt_start"] = start
        if end is not None:
            clauses.append(f't."{column}" <= :dt_end')
            params["dt_end"] = end
    for i, (name, value) in enumerate(q.equals.items()):
        prop = props[name]
        clauses.append(f"{prop.sql} = :eq{i}")
        params[f"eq{i}"] = coerce(prop, value, name)
    if q.filter:
        sql, fparams = q.filter
        clauses.append(f"({sql})")
        params.update(fparams)
    if q.scope is not None and q.scope.sql:
        clauses.append(f"({q.scope.sql})")
        params.update(q.scope.params)
    return clauses, params


def _envelope(bbox: list[float], bbox_crs: Crs) -> tuple[str, dict]:
    x0, y0, x1, y1 = bbox_crs.bbox_to_lonlat_order(bbox[:2] + bbox[-2:] if len(bbox) == 4 else
                                                   [bbox[0], bbox[1], bbox[3], bbox[4]])
    params = {"bx0": x0, "by0": y0, "bx1": x1, "by1": y1}
    env = "ST_MakeEnvelope(:bx0, :by0, :bx1, :by1)"
    if bbox_crs.geographic and bbox_crs.srid == 4326:
        return f"ST_SetSRID({env}, 4326)", params
    # A projected box: densify its edges so the box stays a box after reprojection.
    flat = Crs(bbox_crs.uri, bbox_crs.title, bbox_crs.srid, bbox_crs.proj)
    # 16 pieces along the longer side (a step from the shorter side would split a long thin box into
    # billions of vertices); never 0, which ST_Segmentize refuses.
    sql, extra = flat.to_storage(f"ST_Segmentize({env}, GREATEST(:bx1 - :bx0, :by1 - :by0, 1e-6) / 16.0)", "bbox")
    return sql, {**params, **extra}


def coerce(prop: Property, value: str, what: str):
    """A query-string value as the property's type (so the comparison is typed and bound)."""
    try:
        if prop.kind == "integer":
            return int(value)
        if prop.kind == "number":
            return float(value)
        if prop.kind == "boolean":
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError
            return lowered in ("true", "1")
        if prop.kind in ("datetime", "date"):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameterValue(f"{what}: '{value}' is not a valid {prop.kind}") from None
    if prop.kind in ("array", "object"):
        raise InvalidParameterValue(f"{what}: filtering on a {prop.kind} property needs a CQL2 filter")
    return value


def items(conn: Connection, layer: Layer, q: ItemsQuery) -> Page:
    props = properties(layer)
    selected = q.properties if q.properties is not None else list(props)
    feature, params = _feature_sql(layer, selected, q.crs, q.skip_geometry)
    clauses, where_params = where_clauses(layer, q, props)
    params.update(where_params)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    order = ", ".join(f'{props[n].sql if n != "id" else "t.id"} {"ASC" if asc else "DESC"} NULLS LAST'
                      for n, asc in q.sortby)
    order = (order + ", " if order else "") + "t.id"
    params.update(limit=q.limit, offset=q.offset)
    table = layer.qualified_table
    page_sql = (f"SELECT coalesce(string_agg(f, ','), '') AS features, count(*) AS returned FROM "
                f"(SELECT {feature} AS f FROM {table} t{where} ORDER BY {order} LIMIT :limit OFFSET :offset) s")
    mode = q.number_matched
    if mode in ("exact", "auto") and not clauses:
        # Unfiltered: the exact count the triggers keep (migration 0004), one index lookup.
        count_sql = "(SELECT n FROM cdt.row_counts WHERE table_name = :count_table)"
        params["count_table"] = layer.table.name
        row = conn.execute(text(f"SELECT p.features, p.returned, {count_sql} AS matched FROM ({page_sql}) p"),
                           params).one()
        matched = row.matched
    elif mode in ("exact", "auto"):
        cap = f" LIMIT {AUTO_EXACT_UP_TO + 1}" if mode == "auto" else ""
        count_sql = f"(SELECT count(*) FROM (SELECT 1 FROM {table} t{where}{cap}) c)"
        row = conn.execute(text(f"SELECT p.features, p.returned, {count_sql} AS matched FROM ({page_sql}) p"),
                           params).one()
        matched = row.matched
        if mode == "auto" and matched > AUTO_EXACT_UP_TO:
            matched = estimate(conn, f"SELECT 1 FROM {table} t{where}", where_params)
    else:
        row = conn.execute(text(page_sql), params).one()
        matched = estimate(conn, f"SELECT 1 FROM {table} t{where}", where_params) if mode == "estimated" else None
    return Page(row.features, row.returned, matched)


def estimate(conn: Connection, select_sql: str, params: dict) -> int:
    """The planner's row estimate: instant on any table size, exact only after ANALYZE."""
    plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) {select_sql}"), params).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


def row_tag(version: int, created_at: datetime) -> str:
    """What an ETag names: the row version, and its creation time, so a feature deleted and brought back
    (whose version starts again at 1) never matches an ETag of its earlier life."""
    return f"{version}.{int(created_at.timestamp() * 1e6):x}"


def feature(conn: Connection, layer: Layer, fid: str, out_crs: Crs, selected: list[str] | None = None,
            scope: ReadRule | None = None) -> tuple[str, str]:
    """One feature as GeoJSON text, and its row tag (for the ETag). Outside `scope`: not found."""
    fid_int = feature_id(fid)
    statement, params = _feature_statement(layer.name, tuple(selected) if selected is not None else None, out_crs,
                                           scope.sql if scope is not None else None)
    if scope is not None and scope.sql:
        params = {**params, **scope.params}
    row = conn.execute(statement, {**params, "fid": fid_int}).first()
    if row is None:
        raise NotFound(f"no feature '{fid}' in collection {layer.name}")
    return row.f, row_tag(row.version, row.created_at)


@lru_cache(maxsize=256)
def _feature_statement(layer_name: str, selected: tuple[str, ...] | None, out_crs: Crs, scope_sql: str | None
                       ) -> tuple[TextClause, dict]:
    """The by-id statement, built and parsed once per layer, CRS, selection and read rule (the hot path)."""
    layer = registry.get(layer_name)
    props = list(selected) if selected is not None else list(properties(layer))
    sql, params = _feature_sql(layer, props, out_crs, False)
    where = f" AND ({scope_sql})" if scope_sql else ""
    return text(f"SELECT {sql} AS f, t.version, t.created_at FROM {layer.qualified_table} t "
                f"WHERE t.id = :fid{where}"), params


def feature_id(fid: str) -> int:
    if not re.fullmatch(r"\d{1,18}", fid):
        raise NotFound(f"no feature '{fid}': feature ids are integers")
    return int(fid)


def _scope_where(scope: ReadRule | None) -> tuple[str, dict]:
    return (f" WHERE {scope.sql}", scope.params) if scope is not None and scope.sql else ("", {})


def extent(conn: Connection, layer: Layer, scope: ReadRule | None = None) -> list[float] | None:
    """Bounding box in CRS84 of what the caller may read (ST_Extent; CDT layers are city-sized)."""
    if not layer.geometry_column:
        return None
    where, params = _scope_where(scope)
    row = conn.execute(text(f'SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM '
                            f'(SELECT ST_Extent(t."{layer.geometry_column}") AS e FROM {layer.qualified_table} t'
                            f'{where}) s'), params).one()
    return None if row[0] is None else [round(v, 7) for v in row]


def temporal_extent(conn: Connection, layer: Layer, scope: ReadRule | None = None) -> list[str | None] | None:
    column = datetime_property(layer)
    if column is None:
        return None
    where, params = _scope_where(scope)
    row = conn.execute(text(f'SELECT min(t."{column}"), max(t."{column}") FROM {layer.qualified_table} t{where}'),
                       params).one()
    return [v.isoformat() if v else None for v in row]
