"""Bulk upsert for external systems: layer records and indicator values, each with a report per record.

Records of a layer are matched by `id` when given, else by the natural key (source, source_id); a matched record
updates only what it gives (merge semantics, like PATCH; null clears a value), a new one is inserted (required
properties and a geometry needed, like POST). Everything is checked before anything is written: properties against
the registry's schema (edits._check_value), vocabularies, geometry (PostGIS, in one statement for the batch; a
batch PostGIS cannot read is re-read record by record to name the bad ones), and the editing rules of
layers/access.py (edit_grants for the request; per record the rule of access.check_edit, evaluated for the whole
batch in one query). The writes are one UPDATE and one INSERT per property set, so the database's triggers stamp
versions and write the history with the transaction's actor; an UPDATE that changes nothing is dropped by the
trigger, which is how a record is reported `unchanged`.

Modes: all_or_nothing (any invalid record: nothing is written, `BulkRefused` carries the full report) or
valid_only (the valid records are written, the others reported).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from layers import access, edits, features
from layers.access import Principal, Unauthorized
from layers.crs import Crs
from layers.errors import CDTError, Forbidden, InvalidParameterValue
from layers.models.planning import VALUE_TYPES
from layers.registry import Layer

MAX_RECORDS = 50_000
MODES = ("all_or_nothing", "valid_only")
# Who may write indicator values: officials who plan and analyse (agency staff and enterprises may not).
INDICATOR_ROLES = ("federal", "regional", "municipal", "analyst")
YEARS = (1900, 2100)
# Computed indicators get their actual values from the engine (planning); imports may give forecasts and targets.
COMPUTED_KINDS = ("measure", "expr", "family")
RESERVED = ("id", "geometry", "geometry_wkt", "wkt", "lon", "lat", "x", "y", "type", "properties")


class PayloadTooLarge(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 413, "PayloadTooLarge", context)


class BulkRefused(CDTError):
    """all_or_nothing with invalid records: nothing written; the report says why (422)."""

    def __init__(self, report: dict):
        for rec in report["records"]:
            if rec["status"] == "inserted":
                rec.pop("id", None)  # rolled back: that id does not exist
        super().__init__(f"{report['counts']['invalid']} invalid record(s): nothing written", 422,
                         "InvalidParameterValue", report)


@dataclass
class Item:
    ref: dict  # {"index": i} (JSON, 0-based) or {"line": n} (CSV, 1-based, the header is line 1)
    given: dict  # properties as sent
    geometry: object = None  # GeoJSON object, WKT text or None
    fid: int | None = None  # `id` as sent
    messages: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict)  # the valid properties, JSON-ready
    target: int | None = None  # the existing feature it updates
    status: str = "invalid"

    @property
    def key(self) -> dict:
        if self.fid is not None:
            return {"id": self.fid}
        return {"source": self.given.get("source"), "source_id": self.given.get("source_id")}

    def report(self) -> dict:
        out = {**self.ref, "key": self.key, "status": "invalid" if self.messages else self.status,
               "messages": self.messages}
        if self.target is not None:
            out["id"] = self.target
        return out


def parse_mode(raw: str | None) -> str:
    mode = raw or "all_or_nothing"
    if mode not in MODES:
        raise InvalidParameterValue(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _check_count(n: int) -> None:
    if n > MAX_RECORDS:
        raise PayloadTooLarge(f"{n} records in one request; at most {MAX_RECORDS}: split the upload")


# --- parsing ------------------------------------------------------------------------------------------------------
def items_from_json(body: object) -> list[Item]:
    """A GeoJSON FeatureCollection or {"records": [...]} (geometry as GeoJSON or WKT; properties nested or flat)."""
    if isinstance(body, dict) and body.get("type") == "FeatureCollection":
        rows = body.get("features")
    elif isinstance(body, dict) and "records" in body:
        rows = body["records"]
    else:
        raise InvalidParameterValue('the body must be a GeoJSON FeatureCollection or {"records": [...]}')
    if not isinstance(rows, list):
        raise InvalidParameterValue("'features' / 'records' must be an array")
    _check_count(len(rows))
    out = []
    for i, row in enumerate(rows):
        item = Item({"index": i}, {})
        if not isinstance(row, dict):
            item.messages.append("a record must be a JSON object")
            out.append(item)
            continue
        nested = row.get("properties")
        if nested is not None and not isinstance(nested, dict):
            item.messages.append("'properties' must be a JSON object")
            nested = {}
        item.given = {**{k: v for k, v in row.items() if k not in RESERVED}, **(nested or {})}
        item.geometry = row.get("geometry") if row.get("geometry") is not None else row.get("geometry_wkt")
        _set_id(item, row.get("id"))
        out.append(item)
    return out


def _csv_reader(data: bytes) -> csv.DictReader:
    """UTF-8 CSV (a BOM allowed, as Excel writes it), comma or semicolon as the header line uses."""
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidParameterValue("the CSV must be UTF-8") from None
    first = content.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    return csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter)


def items_from_csv(data: bytes, layer: Layer, crs: Crs) -> list[Item]:
    """CSV with a header: properties by column name, geometry in `geometry_wkt` or `lon`/`lat` (points)."""
    reader = _csv_reader(data)
    if not reader.fieldnames:
        raise InvalidParameterValue("the CSV has no header")
    props = edits.editable_properties(layer)
    out = []
    for row in reader:
        if len(out) >= MAX_RECORDS:
            _check_count(MAX_RECORDS + 1)
        item = Item({"line": reader.line_num}, {})
        if None in row:
            item.messages.append("more cells than header columns")
        for name, raw in row.items():
            if name is None or name in RESERVED or raw is None:
                continue
            prop = props.get(name)
            try:
                item.given[name] = _csv_value(prop.kind, raw) if prop else (raw if raw != "" else None)
            except ValueError:
                item.messages.append(f"property '{name}' must be {prop.kind}, got {raw!r}")
        wkt = (row.get("geometry_wkt") or row.get("wkt") or "").strip()
        lon, lat = (row.get("lon") or row.get("x") or "").strip(), (row.get("lat") or row.get("y") or "").strip()
        if wkt:
            item.geometry = wkt
        elif lon or lat:
            try:
                x, y = float(lon), float(lat)
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError
                # The columns name the axes; WKT follows the CRS's axis order.
                item.geometry = f"POINT({y!r} {x!r})" if crs.lat_lon else f"POINT({x!r} {y!r})"
            except ValueError:
                item.messages.append(f"lon/lat must be numbers, got {lon!r}, {lat!r}")
        _set_id(item, row.get("id") or None)
        out.append(item)
    return out


def _csv_value(kind: str, raw: str) -> object:
    """A CSV cell as the JSON value of the property's kind; an empty cell is null."""
    if raw == "":
        return None
    if kind == "integer":
        return int(raw)
    if kind == "number":
        return float(raw.replace(",", ".")) if raw.count(",") == 1 and "." not in raw else float(raw)
    if kind == "boolean":
        low = raw.strip().lower()
        if low not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(raw)
        return low in ("true", "1", "yes")
    if kind in ("array", "object"):
        return json.loads(raw) if raw.lstrip().startswith(("[", "{")) else [v.strip() for v in raw.split(";")]
    return raw


def _set_id(item: Item, raw: object) -> None:
    if raw is None:
        return
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw < 2**31:
        item.fid = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31:
        item.fid = int(raw)
    else:
        item.messages.append(f"id must be a positive integer, got {json.dumps(raw, ensure_ascii=False)}")


# --- layer records ------------------------------------------------------------------------------------------------
def _validate_properties(item: Item, layer: Layer, vocab: dict[str, list[str]]) -> None:
    editable, known = edits.editable_properties(layer), features.properties(layer)
    for name, value in item.given.items():
        if name not in editable:
            if name not in known:  # read-only ones (version, updated_at ...) are ignored, as the items API does
                item.messages.append(f"unknown property '{name}'")
            continue
        if isinstance(value, float) and not math.isfinite(value):
            item.messages.append(f"property '{name}' must be a finite number")
            continue
        if name in ("source", "source_id") and isinstance(value, int) and not isinstance(value, bool):
            value = item.given[name] = str(value)
        if isinstance(value, str) and "\x00" in value:
            item.messages.append(f"property '{name}' contains a NUL character")
            continue
        try:
            edits._check_value(editable[name], value)
        except InvalidParameterValue as exc:
            item.messages.append(exc.detail)
            continue
        if name in vocab and value is not None and value not in vocab[name]:
            item.messages.append(f"property '{name}': unknown value {value!r}; known: {', '.join(vocab[name])}")
            continue
        item.values[name] = value


def _match(conn: Connection, layer: Layer, items: list[Item]) -> None:
    """Find the feature each record updates (by id, else by source + source_id); flag missing ids and repeats."""
    table = layer.qualified_table
    by_id = {r.id: r for r in conn.execute(
        text(f"SELECT id, source, source_id FROM {table} WHERE id = ANY(CAST(:ids AS int[]))"),
        {"ids": sorted({i.fid for i in items if i.fid is not None})})}
    keyed = [i for i in items if i.fid is None and isinstance(i.given.get("source"), str)
             and isinstance(i.given.get("source_id"), str)]
    by_key = {(r.source, r.source_id): r.id for r in conn.execute(text(
        f"SELECT t.id, t.source, t.source_id FROM {table} t JOIN unnest(CAST(:s AS text[]), CAST(:k AS text[])) "
        f"AS u(s, k) ON t.source = u.s AND t.source_id = u.k"),
        {"s": [i.given["source"] for i in keyed], "k": [i.given["source_id"] for i in keyed]})}
    seen: dict[object, dict] = {}
    for item in items:
        if item.fid is not None:
            if item.fid not in by_id:
                item.messages.append(f"no feature {item.fid} in collection {layer.name}")
                continue
            item.target = item.fid
        elif not (isinstance(item.given.get("source"), str) and isinstance(item.given.get("source_id"), str)
                  and item.given["source"] and item.given["source_id"]):
            item.messages.append("source and source_id are required (or the id of an existing feature)")
            continue
        else:
            item.target = by_key.get((item.given["source"], item.given["source_id"]))
        ident = item.target if item.target is not None else (item.given["source"], item.given["source_id"])
        if ident in seen:
            item.messages.append(f"the same feature as record {json.dumps(seen[ident])}")
        seen.setdefault(ident, item.ref)


def _require_for_insert(item: Item, layer: Layer) -> None:
    if item.target is not None:
        return
    if item.geometry is None and layer.geometry_required:
        item.messages.append("a new feature needs a geometry")
    for name, prop in edits.editable_properties(layer).items():
        if name not in item.given and prop.column.server_default is None and not prop.nullable:
            item.messages.append(f"property '{name}' is required")


def _stage(conn: Connection, layer: Layer, items: list[Item]) -> None:
    """A temporary copy of the table's columns plus the record's number, target, given names and geometry."""
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.bulk_stage"))
    conn.execute(text(f"CREATE TEMP TABLE bulk_stage ON COMMIT DROP AS SELECT * FROM {layer.qualified_table} "
                      "WITH NO DATA"))
    conn.execute(text("ALTER TABLE pg_temp.bulk_stage ADD COLUMN _i int, ADD COLUMN _target int, "
                      "ADD COLUMN _given text[], ADD COLUMN _gj text, ADD COLUMN _wkt text, ADD COLUMN _g geometry, "
                      "ADD COLUMN _ok boolean"))
    rows = [{**item.values, "_i": n, "_target": item.target, "_given": sorted(item.values),
             "_gj": json.dumps(item.geometry) if isinstance(item.geometry, dict) else None,
             "_wkt": item.geometry if isinstance(item.geometry, str) else None, "_ok": not item.messages}
            for n, item in enumerate(items)]
    conn.execute(text("INSERT INTO pg_temp.bulk_stage SELECT * FROM "
                      "jsonb_populate_recordset(NULL::pg_temp.bulk_stage, CAST(:rows AS jsonb))"),
                 {"rows": json.dumps(rows, default=str)})


def _read_geometries(conn: Connection, items: list[Item], crs: Crs) -> None:
    """Parse and transform every geometry in one statement; if PostGIS refuses one, find which, record by record."""
    for n, item in enumerate(items):
        if item.geometry is not None and not isinstance(item.geometry, (dict, str)):
            item.messages.append("'geometry' must be a GeoJSON geometry object or WKT text")
            conn.execute(text("UPDATE pg_temp.bulk_stage SET _gj = NULL, _wkt = NULL WHERE _i = :i"), {"i": n})
    expr, params = crs.to_storage("coalesce(ST_GeomFromGeoJSON(_gj), ST_GeomFromText(_wkt))", "content")
    sql = f"UPDATE pg_temp.bulk_stage SET _g = {expr} WHERE (_gj IS NOT NULL OR _wkt IS NOT NULL)"
    try:
        with conn.begin_nested():
            conn.execute(text(sql), params)
        return
    except DBAPIError:
        pass
    for n, item in enumerate(items):
        if item.geometry is None:
            continue
        try:
            with conn.begin_nested():
                conn.execute(text(sql + " AND _i = :i"), {**params, "i": n})
        except DBAPIError as exc:
            item.messages.append(f"geometry cannot be read: {edits._db_message(exc)}")


def _check_geometries(conn: Connection, layer: Layer, items: list[Item]) -> None:
    """The checks of edits._geometry, for the whole batch in one query."""
    allowed = edits.FAMILY.get(layer.geometry_type or "")
    rows = conn.execute(text(
        "SELECT _i, ST_GeometryType(_g) AS type, ST_IsEmpty(_g) AS empty, ST_IsValid(_g) AS valid, "
        "CASE WHEN NOT ST_IsValid(_g) THEN ST_IsValidReason(_g) END AS reason, "
        "ST_XMin(_g) AS x0, ST_YMin(_g) AS y0, ST_XMax(_g) AS x1, ST_YMax(_g) AS y1 "
        "FROM pg_temp.bulk_stage WHERE _g IS NOT NULL")).all()
    for r in rows:
        item, gtype = items[r._i], r.type.removeprefix("ST_")
        if allowed is not None and gtype not in allowed:
            item.messages.append(f"collection {layer.name} holds {layer.geometry_type} geometries, not {gtype}")
        elif r.empty:
            item.messages.append("geometry is empty")
        elif not r.valid:
            item.messages.append(f"invalid geometry: {r.reason}")
        elif not (-180 <= r.x0 <= r.x1 <= 180 and -90 <= r.y0 <= r.y1 <= 90):
            item.messages.append("geometry lies outside the valid range of longitudes and latitudes; check the crs "
                                 "and the axis order")
    if (layer.geometry_type or "").startswith("MULTI"):
        conn.execute(text("UPDATE pg_temp.bulk_stage SET _g = ST_Multi(_g) WHERE _g IS NOT NULL"))


def _check_territory(conn: Connection, layer: Layer, items: list[Item], principal: Principal) -> None:
    """access.check_edit's rule for every record at once: the old and the new geometry must lie within the
    user's territories (federal: anywhere; an enterprise places its own objects anywhere and edits only those)."""
    grants = access.edit_grants(principal, layer)
    if any(g.role == "federal" for g in grants):
        return
    enterprise = any(g.role == "enterprise" for g in grants)
    ids = sorted({i for g in grants if g.role in access.SCOPED for i in principal.scopes.get(g, ())})
    rows = conn.execute(text(f"""
        WITH area AS MATERIALIZED (SELECT ST_Union(tt.boundary) AS a FROM cdt.territories tt
                                   WHERE tt.boundary IS NOT NULL AND tt.id = ANY(CAST(:scope AS int[])))
        SELECT s._i, s._g IS NOT NULL AS has_new, coalesce(ST_CoveredBy(s._g, area.a), false) AS new_inside,
               t.id IS NOT NULL AS has_old, coalesce(ST_CoveredBy(t."{layer.geometry_column}", area.a), false)
               AS old_inside, coalesce(t.created_by = :actor, false) AS own
        FROM pg_temp.bulk_stage s CROSS JOIN area LEFT JOIN {layer.qualified_table} t ON t.id = s._target"""),
        {"scope": ids, "actor": principal.actor}).all()
    for r in rows:
        item = items[r._i]
        own = enterprise and r.own
        if r.has_old and not (own or (ids and r.old_inside)):
            item.messages.append(f"feature {item.target} is not yours" if enterprise and not ids
                                 else f"feature {item.target} lies outside your territory")
        elif r.has_new and not (own or (enterprise and not r.has_old)) and not (ids and r.new_inside):
            item.messages.append("outside your territory: the geometry leaves the territories of your grants")


def _write(conn: Connection, layer: Layer, items: list[Item]) -> None:
    """One UPDATE for the matched records, one INSERT per set of given properties; a statement the database
    refuses is retried record by record, so the refused ones are reported and the others written."""
    g = f'"{layer.geometry_column}"'
    territory = edits.TERRITORY_OF.format(g="s._g")
    has_territory = "territory_id" in layer.table.columns
    sets = [f'"{n}" = CASE WHEN \'{n}\' = ANY(s._given) THEN s."{n}" ELSE t."{n}" END'
            for n in edits.editable_properties(layer)]
    sets.append(f"{g} = coalesce(s._g, t.{g})")
    if has_territory:
        sets.append(f"territory_id = CASE WHEN s._g IS NULL THEN t.territory_id ELSE {territory} END")
    conn.execute(text("UPDATE pg_temp.bulk_stage SET _ok = false WHERE _i = ANY(CAST(:bad AS int[]))"),
                 {"bad": [n for n, i in enumerate(items) if i.messages]})
    # An UPDATE the stamping trigger drops (nothing changed) returns no row: those records stay `unchanged`.
    statements: list[tuple[str, dict, list[int]]] = [(
        f"UPDATE {layer.qualified_table} t SET {', '.join(sets)} FROM pg_temp.bulk_stage s "
        f"WHERE t.id = s._target AND s._ok{{only}} RETURNING s._i",
        {}, [n for n, i in enumerate(items) if i.target is not None and not i.messages])]
    for given in sorted({tuple(sorted(i.values)) for i in items if i.target is None and not i.messages}):
        cols = [f'"{n}"' for n in given] + [g] + (["territory_id"] if has_territory else [])
        exprs = [f's."{n}"' for n in given] + ["s._g"] + ([territory] if has_territory else [])
        members = [n for n, i in enumerate(items) if i.target is None and not i.messages
                   and tuple(sorted(i.values)) == given]
        statements.append((f"INSERT INTO {layer.qualified_table} ({', '.join(cols)}) SELECT {', '.join(exprs)} "
                           f"FROM pg_temp.bulk_stage s WHERE s._target IS NULL AND s._ok "
                           f"AND s._given = CAST(:given AS text[]){{only}} ORDER BY s._i RETURNING id, source, "
                           f"source_id", {"given": list(given)}, members))
    for i in items:
        if not i.messages:
            i.status = "unchanged" if i.target is not None else "inserted"
    for sql, params, members in statements:
        try:
            with conn.begin_nested():
                _apply(conn, sql.format(only=""), params, items)
        except DBAPIError:
            for n in members:
                try:
                    with conn.begin_nested():
                        _apply(conn, sql.format(only=" AND s._i = :one"), {**params, "one": n}, items)
                except DBAPIError as exc:
                    items[n].messages.append(f"cannot be stored: {edits._db_message(exc)}")


def _apply(conn: Connection, sql: str, params: dict, items: list[Item]) -> None:
    result = conn.execute(text(sql), params)
    if sql.startswith("INSERT"):
        # New rows are paired with their records by the natural key every inserted record carries.
        by_key = {(i.given.get("source"), i.given.get("source_id")): i for i in items
                  if i.target is None and not i.messages}
        for r in result:
            by_key[(r.source, r.source_id)].target = r.id
    else:
        for n in result.scalars():
            items[n].status = "updated"


def upsert_records(conn: Connection, layer: Layer, items: list[Item], principal: Principal, crs: Crs, mode: str,
                   source: str | None = None) -> dict:
    """Validate every record, then (unless all_or_nothing finds an invalid one) write; returns the report.
    Raises BulkRefused (all_or_nothing with invalid records): the caller's transaction must roll back."""
    started = time.perf_counter()
    edits.require_editable(layer)
    access.edit_grants(principal, layer)
    if layer.natural_key != ("source", "source_id"):
        raise InvalidParameterValue(f"collection {layer.name} has no source/source_id key for bulk upserts")
    if source is not None:
        for item in items:
            item.given.setdefault("source", source)
    vocab = features.vocabularies(conn, layer)
    for item in items:
        _validate_properties(item, layer, vocab)
    _match(conn, layer, items)
    for item in items:
        _require_for_insert(item, layer)
    if items:
        _stage(conn, layer, items)
        _read_geometries(conn, items, crs)
        _check_geometries(conn, layer, items)
        _check_territory(conn, layer, items, principal)
    if items:
        # Written even when all_or_nothing refuses (the caller rolls back): the report then says what each valid
        # record would have been, and a record the database itself refuses is found too.
        _write(conn, layer, items)
    report = _report(items, mode, started, collection=layer.name)
    if report["counts"]["invalid"] and mode == "all_or_nothing":
        raise BulkRefused(report)
    return report


def _report(items: list[Item], mode: str, started: float, **head) -> dict:
    records = [i.report() for i in items]
    counts = {s: 0 for s in ("inserted", "updated", "unchanged", "invalid")}
    for r in records:
        counts[r["status"]] += 1
    written = not (counts["invalid"] and mode == "all_or_nothing")
    return {**head, "mode": mode, "written": written, "counts": counts,
            "elapsed_ms": round((time.perf_counter() - started) * 1000), "records": records}


# --- indicator values ---------------------------------------------------------------------------------------------
def indicator_scope(principal: Principal) -> list[int] | None:
    """The territory ids whose indicator values the principal may write (None: all); 401/403 when none."""
    if principal.anonymous:
        raise Unauthorized("writing indicator values needs a signed-in user (session or Bearer token)")
    grants = [g for g in principal.grants if g.role in INDICATOR_ROLES]
    if not grants:
        raise Forbidden(f"your role may not write indicator values (roles: {', '.join(INDICATOR_ROLES)})")
    if any(g.role == "federal" for g in grants):
        return None
    return sorted({i for g in grants for i in principal.scopes.get(g, ())})


VALUE_FIELDS = ("indicator", "territory", "year", "value_type", "value", "scenario")


def values_from_json(body: object) -> list[Item]:
    rows = body.get("values") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise InvalidParameterValue('the body must be {"values": [{"indicator", "territory", "year", ...}]}')
    _check_count(len(rows))
    return [Item({"index": i}, row if isinstance(row, dict) else {},
                 messages=[] if isinstance(row, dict) else ["a value must be a JSON object"])
            for i, row in enumerate(rows)]


def values_from_csv(data: bytes) -> list[Item]:
    reader = _csv_reader(data)
    missing = [c for c in ("indicator", "territory", "year", "value") if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidParameterValue(f"the CSV lacks the columns {', '.join(missing)}; columns: "
                                    f"{', '.join(VALUE_FIELDS)}")
    out = []
    for row in reader:
        if len(out) >= MAX_RECORDS:
            _check_count(MAX_RECORDS + 1)
        given: dict = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None}
        item = Item({"line": reader.line_num}, given)
        for name, conv in (("year", int), ("value", lambda s: float(s.replace(",", "."))), ("scenario", int)):
            raw = given.get(name)
            if raw in (None, ""):
                given[name] = None
                continue
            try:
                given[name] = conv(raw)
            except ValueError:
                item.messages.append(f"{name} must be a number, got {raw!r}")
        out.append(item)
    return out


def _value_key(item: Item) -> dict:
    return {k: item.given.get(k) for k in ("indicator", "territory", "year", "value_type", "scenario")}


def upsert_indicator_values(conn: Connection, items: list[Item], principal: Principal, mode: str) -> dict:
    """Validate and upsert values (ON CONFLICT on indicator, territory, period, value type, scenario); the source
    column is `bulk:<actor>`. Raises BulkRefused (all_or_nothing with invalid values)."""
    started = time.perf_counter()
    scope = indicator_scope(principal)
    allowed = None if scope is None else set(scope)
    kinds = dict(conn.execute(text("SELECT code, kind FROM cdt.indicators WHERE code = ANY(CAST(:c AS text[]))"),
                              {"c": sorted({str(i.given.get("indicator")) for i in items})}).all())
    oktmos = sorted({str(i.given.get("territory")) for i in items})
    territories = dict(conn.execute(text("SELECT oktmo, id FROM cdt.territories WHERE oktmo = ANY(CAST(:o AS "
                                         "text[]))"), {"o": oktmos}).all())
    scenarios = set(conn.execute(text("SELECT id FROM cdt.scenarios")).scalars())
    rows, seen = [], {}
    for n, item in enumerate(items):
        g, msgs = item.given, item.messages
        unknown = sorted(set(g) - set(VALUE_FIELDS))
        if unknown:
            msgs.append(f"unknown field(s) {', '.join(unknown)}; fields: {', '.join(VALUE_FIELDS)}")
        code, oktmo = g.get("indicator"), g.get("territory")
        if isinstance(oktmo, int) and not isinstance(oktmo, bool):
            oktmo = g["territory"] = str(oktmo)
        value_type = g.setdefault("value_type", "actual") or "actual"
        g["value_type"] = value_type
        if code not in kinds:
            msgs.append(f"unknown indicator {json.dumps(code, ensure_ascii=False)}")
        elif kinds[code] in COMPUTED_KINDS and value_type == "actual":
            msgs.append(f"indicator {code} is computed ({kinds[code]}): its actual values come from the engine; "
                        "send forecast or target values")
        tid = territories.get(oktmo) if isinstance(oktmo, str) else None
        if tid is None:
            msgs.append(f"unknown territory (OKTMO) {json.dumps(oktmo, ensure_ascii=False)}")
        elif allowed is not None and tid not in allowed:
            msgs.append(f"territory {oktmo} is outside your territory")
        year = g.get("year")
        if not (isinstance(year, int) and not isinstance(year, bool) and YEARS[0] <= year <= YEARS[1]):
            msgs.append(f"year must be an integer from {YEARS[0]} to {YEARS[1]}, got {json.dumps(year)}")
        if value_type not in VALUE_TYPES:
            msgs.append(f"value_type must be one of {', '.join(VALUE_TYPES)}, not {json.dumps(value_type)}")
        value = g.get("value")
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            msgs.append(f"value must be a number, got {json.dumps(value)}")
        elif not math.isfinite(value) or abs(value) > 1e300:
            msgs.append(f"value must be finite, got {value}")
        scenario = g.get("scenario")
        if scenario is not None and (not isinstance(scenario, int) or isinstance(scenario, bool)
                                     or scenario not in scenarios):
            msgs.append(f"unknown scenario {json.dumps(scenario)}")
        if msgs:
            continue
        key = (code, tid, year, value_type, scenario)
        if key in seen:
            msgs.append(f"the same value as record {json.dumps(seen[key])}")
            continue
        seen[key] = item.ref
        item.status = "unchanged"
        rows.append((n, key, float(value)))
    if rows:  # all_or_nothing with invalid values: written, then rolled back by the caller (BulkRefused)
        where = {key: n for n, key, _ in rows}
        found = conn.execute(UPSERT_VALUES, {
            "codes": [k[0] for _, k, _ in rows], "territories": [k[1] for _, k, _ in rows],
            "periods": [date(k[2], 1, 1) for _, k, _ in rows], "types": [k[3] for _, k, _ in rows],
            "scenarios": [k[4] for _, k, _ in rows], "values": [v for _, _, v in rows],
            "source": f"bulk:{principal.actor}"})
        for r in found:
            items[where[(r.indicator_code, r.territory_id, r.period.year, r.value_type, r.scenario_id)]].status = (
                "inserted" if r.inserted else "updated")
    for item in items:
        item.fid = None
    report = _report(items, mode, started)
    for rec, item in zip(report["records"], items, strict=True):
        rec["key"] = _value_key(item)
    if report["counts"]["invalid"] and mode == "all_or_nothing":
        raise BulkRefused(report)
    return report


UPSERT_VALUES = text("""
INSERT INTO cdt.indicator_values AS v (indicator_code, territory_id, period, value_type, scenario_id, value, source)
SELECT u.code, u.territory, u.period, u.type, u.scenario, u.value, :source
FROM unnest(CAST(:codes AS text[]), CAST(:territories AS integer[]), CAST(:periods AS date[]),
            CAST(:types AS text[]), CAST(:scenarios AS integer[]), CAST(:values AS double precision[]))
     AS u(code, territory, period, type, scenario, value)
ON CONFLICT (indicator_code, territory_id, period, value_type, scenario_id) DO UPDATE
SET value = EXCLUDED.value, source = EXCLUDED.source, computed_at = now()
WHERE v.value IS DISTINCT FROM EXCLUDED.value OR v.source IS DISTINCT FROM EXCLUDED.source
RETURNING v.indicator_code, v.territory_id, v.period, v.value_type, v.scenario_id, xmax = 0 AS inserted
""")
