"""Create, replace, update, delete and revert features of editable collections.

Every write runs inside the caller's one transaction (`layers.db.transaction`, which records the
actor): the geometry is validated by PostGIS before anything is written, the row version is
checked against `If-Match`, and the database's own triggers bump the version and write the
history. Any error raises and the transaction rolls back: nothing is half-written.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from layers import access
from layers.access import Principal, ReadRule
from layers.crs import CRS84, Crs
from layers.errors import InvalidParameterValue, MethodNotAllowed, NotFound, PreconditionFailed
from layers.features import Property, feature_id, properties, row_tag
from layers.registry import Layer

# Maintained by CDT itself: the territory a feature lies in is found from its geometry.
DERIVED = frozenset({"territory_id"})

FAMILY = {"POINT": {"Point", "MultiPoint"}, "LINESTRING": {"LineString"}, "POLYGON": {"Polygon"},
          "MULTIPOLYGON": {"Polygon", "MultiPolygon"}, "MULTILINESTRING": {"LineString", "MultiLineString"},
          "MULTIPOINT": {"Point", "MultiPoint"}}


def editable_properties(layer: Layer) -> dict[str, Property]:
    return {n: p for n, p in properties(layer).items() if p.writable and n not in DERIVED}


def require_editable(layer: Layer) -> None:
    if not layer.editable:
        raise MethodNotAllowed(f"collection {layer.name} is read-only")


def _check_value(prop: Property, value: object):
    """The JSON value as the column's type, or a 400 naming the property."""
    if value is None:
        if not prop.nullable:
            raise InvalidParameterValue(f"property '{prop.name}' must not be null")
        return None
    ok = {
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "datetime": isinstance(value, str),
        "date": isinstance(value, str),
        "object": isinstance(value, dict),
    }[prop.kind]
    if not ok:
        raise InvalidParameterValue(f"property '{prop.name}' must be {prop.kind}, got {json.dumps(value)}")
    _check_bounds(prop, value)
    if prop.kind == "datetime":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameterValue(f"property '{prop.name}': '{value}' is not an RFC 3339 date-time") from None
    if prop.kind == "date":
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise InvalidParameterValue(f"property '{prop.name}': '{value}' is not a date") from None
    if prop.kind == "object":
        return json.dumps(value)
    return value


def _check_bounds(prop: Property, value: object) -> None:
    """The limits the schema declares (column `info`): allowed values, range, length."""
    info = prop.column.info if prop.column is not None else {}
    if "enum" in info and value not in info["enum"]:
        raise InvalidParameterValue(f"property '{prop.name}' must be one of {', '.join(map(str, info['enum']))}; "
                                    f"got {json.dumps(value, ensure_ascii=False)}")
    if isinstance(value, (int, float)):
        if "minimum" in info and value < info["minimum"]:
            raise InvalidParameterValue(f"property '{prop.name}' must be at least {info['minimum']}, got {value}")
        if "maximum" in info and value > info["maximum"]:
            raise InvalidParameterValue(f"property '{prop.name}' must be at most {info['maximum']}, got {value}")
    if isinstance(value, str) and "maxLength" in info and len(value) > info["maxLength"]:
        raise InvalidParameterValue(f"property '{prop.name}' must be at most {info['maxLength']} characters long")


def _properties(layer: Layer, body: dict, *, partial: bool) -> dict[str, object]:
    given = body.get("properties") or {}
    if not isinstance(given, dict):
        raise InvalidParameterValue("'properties' must be a JSON object")
    editable = editable_properties(layer)
    known = properties(layer)
    values: dict[str, object] = {}
    for name, value in given.items():
        if name not in editable:
            if name in known:
                # Clients echo back read-only values (version, updated_at ...): ignore them unchanged.
                continue
            raise InvalidParameterValue(f"unknown property '{name}' for collection {layer.name}; "
                                        f"its properties are: {', '.join(editable)}")
        values[name] = _check_value(editable[name], value)
    if not partial:
        for name, prop in editable.items():
            if name in values:
                continue
            column = prop.column
            if column.server_default is None and not prop.nullable:
                raise InvalidParameterValue(f"property '{name}' is required")
            values[name] = None if column.server_default is None else _DEFAULT
    return values


class _Default:
    """Marks a column to be set to its server default (a full replace that omits it)."""


_DEFAULT = _Default()


def _geometry(conn: Connection, layer: Layer, geometry: object, content_crs: Crs) -> tuple[str, dict]:
    """SQL for the incoming geometry in storage CRS, after PostGIS has checked it."""
    if not isinstance(geometry, dict) or "type" not in geometry:
        raise InvalidParameterValue("'geometry' must be a GeoJSON geometry object")
    expr, params = content_crs.to_storage("ST_GeomFromGeoJSON(CAST(:geojson AS text))", "content")
    params["geojson"] = json.dumps(geometry)
    try:
        with conn.begin_nested():
            row = conn.execute(text(f"SELECT ST_IsValid(g) AS valid, ST_IsValidReason(g) AS reason, "
                                    f"ST_GeometryType(g) AS type, ST_IsEmpty(g) AS empty, "
                                    f"ST_XMin(g) AS x0, ST_YMin(g) AS y0, ST_XMax(g) AS x1, ST_YMax(g) AS y1 "
                                    f"FROM (SELECT {expr} AS g) s"), params).one()
    except DBAPIError as exc:
        raise InvalidParameterValue(f"geometry cannot be read: {_db_message(exc)}") from None
    gtype = row.type.removeprefix("ST_")
    allowed = FAMILY.get(layer.geometry_type or "")
    if allowed is not None and gtype not in allowed:
        raise InvalidParameterValue(f"collection {layer.name} holds {layer.geometry_type} geometries, not {gtype}")
    if row.empty:
        raise InvalidParameterValue("geometry is empty")
    if not row.valid:
        raise InvalidParameterValue(f"invalid geometry: {row.reason}", reason=row.reason)
    if not (-180 <= row.x0 <= row.x1 <= 180 and -90 <= row.y0 <= row.y1 <= 90):
        raise InvalidParameterValue("geometry lies outside the valid range of longitudes and latitudes; "
                                    "check the Content-Crs and the axis order")
    if (layer.geometry_type or "").startswith("MULTI"):
        expr = f"ST_Multi({expr})"
    return expr, params


TERRITORY_OF = ("(SELECT tt.id FROM cdt.territories tt WHERE tt.boundary IS NOT NULL "
                "AND ST_Intersects(tt.boundary, ST_PointOnSurface({g})) ORDER BY ST_Area(tt.boundary) LIMIT 1)")


def _current_tag(conn: Connection, layer: Layer, fid: int) -> str:
    row = conn.execute(text(f"SELECT version, created_at FROM {layer.qualified_table} WHERE id = :id FOR UPDATE"),
                       {"id": fid}).first()
    if row is None:
        raise NotFound(f"no feature '{fid}' in collection {layer.name}")
    return row_tag(row.version, row.created_at)


def _check_if_match(current: str, if_match: str | None) -> None:
    if if_match is not None and if_match != current:
        raise PreconditionFailed(f"the feature has changed since that ETag (now version {current.split('.')[0]}, "
                                 f"If-Match names version {if_match.split('.')[0]}); fetch it again and re-apply "
                                 "the edit")


def _bind(values: dict[str, object]) -> tuple[list[str], list[str], dict]:
    cols, exprs, params = [], [], {}
    for i, (name, value) in enumerate(values.items()):
        cols.append(f'"{name}"')
        if value is _DEFAULT:
            exprs.append("DEFAULT")
        else:
            exprs.append(f":v{i}")
            params[f"v{i}"] = value
    return cols, exprs, params


def _write(conn: Connection, sql: str, params: dict) -> tuple[int, int] | None:
    """Run an INSERT/UPDATE ... RETURNING id, version. None: an UPDATE that changed nothing
    (the stamping trigger drops it, so the version stays)."""
    try:
        with conn.begin_nested():
            row = conn.execute(text(sql), params).first()
    except IntegrityError as exc:
        raise InvalidParameterValue(f"the feature violates a rule of the collection: {_db_message(exc)}") from None
    except DBAPIError as exc:
        raise InvalidParameterValue(f"the feature cannot be stored: {_db_message(exc)}") from None
    return None if row is None else (row.id, row.version)


def _db_message(exc: DBAPIError) -> str:
    diag = getattr(exc.orig, "diag", None)
    # The detail ("Failing row contains ...") would echo raw values and hex geometries: leave it out.
    return getattr(diag, "message_primary", None) or str(exc.orig).splitlines()[0]


def _parse_body(body: object) -> dict:
    if not isinstance(body, dict):
        raise InvalidParameterValue("the body must be a GeoJSON Feature object")
    if body.get("type") not in (None, "Feature"):
        raise InvalidParameterValue(f"the body must be a GeoJSON Feature, not {body.get('type')!r}")
    return body


def _insert(conn: Connection, layer: Layer, values: dict, geom: str, params: dict, fid: int | None = None
            ) -> tuple[int, int]:
    cols, exprs, vparams = _bind({k: v for k, v in values.items() if v is not _DEFAULT})
    cols += [f'"{layer.geometry_column}"', "territory_id"]
    exprs += ["s.g", TERRITORY_OF.format(g="s.g")]
    if fid is not None:
        cols.insert(0, "id")
        exprs.insert(0, ":id")
        vparams["id"] = fid
    sql = (f"INSERT INTO {layer.qualified_table} ({', '.join(cols)}) SELECT {', '.join(exprs)} "
           f"FROM (SELECT {geom} AS g) s RETURNING id, version")
    return _write(conn, sql, {**params, **vparams})


def create(conn: Connection, layer: Layer, body: object, content_crs: Crs, principal: Principal) -> tuple[int, str]:
    require_editable(layer)
    access.edit_grants(principal, layer)
    body = _parse_body(body)
    values = _properties(layer, body, partial=False)
    geom, params = _geometry(conn, layer, body.get("geometry"), content_crs)
    access.check_edit(conn, principal, layer, new_geometry=(geom, params))
    fid, _ = _insert(conn, layer, values, geom, params)
    return fid, _current_tag(conn, layer, fid)


def update(conn: Connection, layer: Layer, fid: str, body: object, content_crs: Crs, if_match: str | None,
           principal: Principal, *, partial: bool) -> str:
    """PUT (replace, partial=False) or PATCH (JSON merge patch, partial=True). Returns the row tag."""
    require_editable(layer)
    access.edit_grants(principal, layer)
    fid_int = feature_id(fid)
    body = _parse_body(body)
    _check_if_match(_current_tag(conn, layer, fid_int), if_match)
    access.check_edit(conn, principal, layer, old_fid=fid_int)
    values = _properties(layer, body, partial=partial)
    sets, params = [], {"id": fid_int}
    cols, exprs, vparams = _bind(values)
    sets += [f"{c} = {e}" for c, e in zip(cols, exprs, strict=True)]
    params.update(vparams)
    source = ""
    if "geometry" in body or not partial:
        if body.get("geometry") is None:
            raise InvalidParameterValue(f"collection {layer.name} needs a geometry")
        geom, gparams = _geometry(conn, layer, body.get("geometry"), content_crs)
        access.check_edit(conn, principal, layer, old_fid=fid_int, new_geometry=(geom, gparams))
        params.update(gparams)
        g = layer.geometry_column
        sets += [f'"{g}" = s.g', f"territory_id = {TERRITORY_OF.format(g='s.g')}"]
        source = f" FROM (SELECT {geom} AS g) s"
    if sets:
        _write(conn, f"UPDATE {layer.qualified_table} t SET {', '.join(sets)}{source} "
                     f"WHERE t.id = :id RETURNING t.id, t.version", params)
    return _current_tag(conn, layer, fid_int)


def delete(conn: Connection, layer: Layer, fid: str, if_match: str | None, principal: Principal) -> None:
    require_editable(layer)
    access.edit_grants(principal, layer)
    fid_int = feature_id(fid)
    _check_if_match(_current_tag(conn, layer, fid_int), if_match)
    access.check_edit(conn, principal, layer, old_fid=fid_int)
    conn.execute(text(f"DELETE FROM {layer.qualified_table} WHERE id = :id"), {"id": fid_int})


def history(conn: Connection, layer: Layer, fid: str, scope: ReadRule | None = None) -> list[dict]:
    fid_int = feature_id(fid)
    rows = conn.execute(text("SELECT version, operation, actor, at, before, after FROM cdt.history "
                             "WHERE collection = :c AND feature_id = :f ORDER BY id"),
                        {"c": layer.table.name, "f": str(fid_int)}).mappings().all()
    if not rows or not _state_readable(conn, layer, rows[-1]["after"] or rows[-1]["before"], scope):
        raise NotFound(f"no history for feature '{fid}' in collection {layer.name}")
    return [{"version": r["version"], "operation": r["operation"].lower(), "actor": r["actor"],
             "at": r["at"].isoformat(), "before": r["before"], "after": r["after"]} for r in rows]


def _state_readable(conn: Connection, layer: Layer, state: dict, scope: ReadRule | None) -> bool:
    """Whether the read rule admits a feature as recorded in the history (current, or last before deletion)."""
    if scope is None or scope.sql is None:
        return True
    row = conn.execute(text(f"SELECT 1 FROM jsonb_populate_record(NULL::{layer.qualified_table}, "
                            f"CAST(:state AS jsonb) - CAST(:geom AS text)) t WHERE {scope.sql}"),
                       {"state": json.dumps(state), "geom": layer.geometry_column, **scope.params}).first()
    return row is not None


def revert(conn: Connection, layer: Layer, fid: str, version: int, if_match: str | None, principal: Principal) -> str:
    """Make the feature as it was at `version` again (a new version; a deleted feature comes back)."""
    require_editable(layer)
    access.edit_grants(principal, layer)
    fid_int = feature_id(fid)
    state = conn.execute(text("SELECT after FROM cdt.history WHERE collection = :c AND feature_id = :f "
                              "AND version = :v AND after IS NOT NULL ORDER BY id DESC LIMIT 1"),
                         {"c": layer.table.name, "f": str(fid_int), "v": version}).scalar()
    # Only who may read the feature as last recorded (current or just before deletion) may revert it.
    last = conn.execute(text("SELECT coalesce(after, before) FROM cdt.history WHERE collection = :c "
                             "AND feature_id = :f ORDER BY id DESC LIMIT 1"),
                        {"c": layer.table.name, "f": str(fid_int)}).scalar()
    if state is None or not _state_readable(conn, layer, last, access.read_rule(principal, layer)):
        raise NotFound(f"feature '{fid}' of {layer.name} has no version {version}")
    geometry = state.get(layer.geometry_column)
    body = {"type": "Feature", "geometry": geometry,
            "properties": {k: v for k, v in state.items() if k in editable_properties(layer)}}
    exists = conn.execute(text(f"SELECT 1 FROM {layer.qualified_table} WHERE id = :id"), {"id": fid_int}).first()
    if exists:
        return update(conn, layer, fid, body, CRS84, if_match, principal, partial=False)
    # Deleted since: bring it back under its old id (as if created again, by whoever may create it here).
    values = _properties(layer, body, partial=False)
    geom, params = _geometry(conn, layer, geometry, CRS84)
    access.check_edit(conn, principal, layer, new_geometry=(geom, params))
    _insert(conn, layer, values, geom, params, fid=fid_int)
    return _current_tag(conn, layer, fid_int)


def apply_authorized(conn: Connection, layer: Layer, operation: str, fid: int | None, body: dict) -> int | None:
    """An edit already authorized when it was recorded (a scenario's edit, replayed in its sandbox): the same
    validation of properties and geometry as create/update/delete, no grant check, no ETag. Returns the id."""
    require_editable(layer)
    if operation == "delete":
        conn.execute(text(f"DELETE FROM {layer.qualified_table} WHERE id = :id"), {"id": fid})
        return fid
    body = _parse_body(body)
    if operation == "insert":
        geom, params = _geometry(conn, layer, body.get("geometry"), CRS84)
        return _insert(conn, layer, _properties(layer, body, partial=False), geom, params)[0]
    cols, exprs, params = _bind(_properties(layer, body, partial=True))
    sets = [f"{c} = {e}" for c, e in zip(cols, exprs, strict=True)]
    source = ""
    if body.get("geometry") is not None:
        geom, gparams = _geometry(conn, layer, body["geometry"], CRS84)
        params.update(gparams)
        g = layer.geometry_column
        sets += [f'"{g}" = s.g', f"territory_id = {TERRITORY_OF.format(g='s.g')}"]
        source = f" FROM (SELECT {geom} AS g) s"
    if conn.execute(text(f"SELECT 1 FROM {layer.qualified_table} WHERE id = :id"), {"id": fid}).first() is None:
        raise NotFound(f"feature {fid} of {layer.name} no longer exists")
    if sets:
        _write(conn, f"UPDATE {layer.qualified_table} t SET {', '.join(sets)}{source} "
                     f"WHERE t.id = :id RETURNING t.id, t.version", {**params, "id": fid})
    return fid
