"""Exports for analysts and BI tools: whole collections, indicator values and balances as files.

Stable URLs (format= or f=: csv, xlsx, geojson, gpkg, parquet; the file is `<name>.<ext>`, sent as an attachment):

- GET /exports/collections/{collectionId}?format=...  every feature the caller may read, with the query parameters
  of /collections/{id}/items (bbox, bbox-crs, datetime, filter, filter-lang, filter-crs, property=value,
  properties, crs, sortby, skipGeometry; limit and offset optional: no limit by default). Analysis results
  (walk_access, service_provision) are collections too.
- GET /exports/indicators?format=...&codes=a,b&family=&year=&territory=<OKTMO>&value_type=&scenario=&layout=long|wide
- GET /exports/balances/{balanceId}?format=csv|xlsx|parquet  the cells in long form (the Order 1169 workbook stays
  at /energy/balances/{id}/xlsx)
- GET /exports/dictionary[?format=json|csv|xlsx]  the columns of every export, generated from the registry.

Access is the API's: the same principal (session cookie or `Authorization: Bearer <token>`: Power BI and Excel
"From Web" set the header under Advanced), the same read rule per collection (401/403, rows scoped by territory),
the same visibility of indicators. A token in the query string (`?access_token=`) is NOT accepted: `cdt serve` runs
gunicorn with an access log that writes every request line with its query string, and proxies and browser
histories keep URLs too, so a token there would leak into places nobody rotates.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response

from geoserver_app import features_api as fa
from geoserver_app.auth import audit, principal
from geoserver_app.ogc import JSON, check_params, engine, json_response, reader, single
from geoserver_app.openapi import api, query
from geoserver_app.openapi import json_response as doc_response
from layers import access, exports, exports_dictionary, features
from layers import exports_writers as writers
from layers.errors import InvalidParameterValue, NotFound
from layers.exports_writers import FORMATS, Export, Format
from layers.models.planning import VALUE_TYPES

blueprint = Blueprint("exports", __name__)
TAGS = ("Exports",)
P_FORMAT = query("format", "File format (f= is the same)", {"type": "string", "enum": list(FORMATS),
                                                             "default": "csv"})
P_F = query("f", "File format (as format=)", {"type": "string", "enum": list(FORMATS)})
FILE = {"200": doc_response("The file, as an attachment", tuple(f.media_type for f in FORMATS.values()))}
P_LIMIT = query("limit", "At most this many features (default: all of them)", {"type": "integer", "minimum": 1})
P_OFFSET = query("offset", "Features to skip", {"type": "integer", "minimum": 0, "default": 0})
# The items' parameters, but no default page: an export is the whole filtered collection.
COLLECTION_PARAMS = [P_FORMAT, P_F, *[{"limit": P_LIMIT, "offset": P_OFFSET}.get(p["name"], p)
                                      for p in fa.ITEMS_PARAMS if p["name"] != "f"]]


def _format(default: str = "csv", allowed: tuple[str, ...] = tuple(FORMATS)) -> Format:
    given = {v.lower() for v in (single("format"), single("f")) if v}
    if len(given) > 1:
        raise InvalidParameterValue("format and f disagree; give one of them")
    name = given.pop() if given else default
    exports.check_format(name, allowed)
    return FORMATS[name]


def _primed(chunks):
    """Run the query before the response starts: a filter PostgreSQL refuses is then a 400, not a cut 200."""
    held = [next(chunks, None)]

    def rest():
        try:
            first = held.pop()  # not kept for the whole response
            if first is not None:
                yield first
                del first
            yield from chunks
        finally:
            getattr(chunks, "close", lambda: None)()  # a generator's close ends its server-side cursor

    return rest()


def _send(export: Export, fmt: Format, headers: dict | None = None) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{export.name}.{fmt.ext}"', **(headers or {})}
    encoding = fmt.geometry_encoding if export.geometry else None
    if fmt.streamed:
        chunks = _primed(export.rows(encoding))
        body = writers.csv_stream(export, chunks) if fmt.name == "csv" else writers.geojson_stream(export, chunks)
        return Response(body, content_type=fmt.media_type, headers=headers)
    path = writers.write_file(export, fmt, export.rows(encoding))
    headers["Content-Length"] = str(os.path.getsize(path))
    return Response(writers.file_stream(path), content_type=fmt.media_type, headers=headers)


# --- collections ------------------------------------------------------------------------------------------
def _items_query(layer, rule: access.ReadRule) -> tuple[features.ItemsQuery, int | None, int]:
    """The query parameters of /collections/{id}/items, parsed by its own functions (features_api)."""
    props = features.properties(layer)
    check_params(["format", *fa.ITEM_PARAM_NAMES], props)
    limit, offset = fa.optional_int("limit", 1), fa.optional_int("offset", 0) or 0
    with reader().connect() as conn:
        q = fa.parse_items_query(conn, layer, rule, limit=limit or 0, offset=offset)
    return q, limit, offset


@api.route(blueprint, "/exports/collections/<collectionId>", summary="Every feature of a collection the caller "
           "may read, filtered as /collections/{id}/items, as CSV, XLSX, GeoJSON, GeoPackage or GeoParquet",
           tags=TAGS, parameters=COLLECTION_PARAMS, responses=FILE)
def collection_export(collectionId: str):  # noqa: N803 - the path parameter's name in /api
    layer, rule = fa.readable_layer(collectionId)
    fmt = _format()
    q, limit, offset = _items_query(layer, rule)
    if fmt.name == "xlsx":
        cap = writers.XLSX_MAX_ROWS
        with reader().connect() as conn:
            n = exports.count_at_most(conn, layer, q, cap + 1)
        if n - offset > cap and (limit is None or limit > cap):
            raise writers.too_many_rows(n - offset)
    headers = {}
    if q.crs and layer.geometry_column and not q.skip_geometry:
        headers["Content-Crs"] = f"<{q.crs.uri}>"
    if layer.access != "public":
        headers["Cache-Control"] = "private, no-store"
        audit(f"export {layer.name}", "ok", layer.name, {"format": fmt.name})
    return _send(exports.collection(engine(), layer, q, limit, offset), fmt, headers)


# --- indicators -------------------------------------------------------------------------------------------
def _indicator_codes(conn) -> list[str]:
    """The codes asked for (or all of the family, or all), only those the caller may see."""
    from planning.indicators import access as indicator_access
    from planning.indicators import catalog

    reg = catalog.registry(conn)
    family = single("family")
    asked = [c.strip() for c in (single("codes") or "").split(",") if c.strip()]
    if asked:
        unknown = [c for c in asked if c not in reg]
        if unknown:
            raise NotFound(f"no indicator(s) {', '.join(unknown)}; see /indicators")
        for c in asked:
            indicator_access.require_readable(principal(), c, reg)
        return [c for c in dict.fromkeys(asked) if family is None or reg[c].family == family]
    hidden = indicator_access.hidden(principal(), reg)
    return sorted(c for c, d in reg.items() if c not in hidden and (family is None or d.family == family))


def _indicator_query(conn) -> exports.IndicatorQuery:
    from planning import scenarios
    from planning.indicators.engine import territories_under

    year = single("year")
    if year not in (None, "") and not (year.isascii() and year.isdigit() and len(year) == 4):
        raise InvalidParameterValue(f"year must be a four-digit year, got '{year}'")
    value_type = single("value_type") or None
    if value_type is not None and value_type not in VALUE_TYPES:
        raise InvalidParameterValue(f"value_type must be one of {', '.join(VALUE_TYPES)}")
    layout_name = single("layout") or "long"
    if layout_name not in ("long", "wide"):
        raise InvalidParameterValue("layout must be long or wide")
    oktmo, raw_sc = single("territory"), single("scenario")
    sid = None
    if raw_sc:
        if not (raw_sc.isascii() and raw_sc.isdigit() and len(raw_sc) <= 9):
            raise NotFound(f"no scenario '{raw_sc}'")
        sid = int(raw_sc)
        scenarios.get(conn, sid)
    from planning.indicators import access as indicator_access
    from planning.indicators import catalog

    codes = tuple(_indicator_codes(conn))
    scopes = indicator_access.scopes(principal(), catalog.registry(conn))
    return exports.IndicatorQuery(
        codes=codes, year=int(year) if year else None,
        territory_ids=tuple(territories_under(conn, oktmo)) if oktmo else None, value_type=value_type,
        scenario_id=sid, layout=layout_name,
        scoped=tuple((c, tuple(sorted(scopes[c]))) for c in codes if scopes[c] is not None))


@api.route(blueprint, "/exports/indicators", summary="Indicator values with their territory and definition, long "
           "(one row per indicator x territory x period x type) or wide (one column per indicator)", tags=TAGS,
           parameters=[P_FORMAT, P_F,
                       query("codes", "Comma-separated indicator codes (default: all you may see)", {"type": "string"}),
                       query("family", "Only indicators of this family", {"type": "string"}),
                       query("year", "Only this year", {"type": "integer"}),
                       query("territory", "This territory (OKTMO) and its descendants", {"type": "string"}),
                       query("value_type", "actual, forecast or target", {"type": "string",
                                                                          "enum": list(VALUE_TYPES)}),
                       query("scenario", "A scenario's values instead of the base values", {"type": "integer"}),
                       query("layout", "long or wide", {"type": "string", "enum": ["long", "wide"]})],
           responses=FILE)
def indicators_export():
    check_params(["format", "f", "codes", "family", "year", "territory", "value_type", "scenario", "layout"])
    fmt = _format()
    with reader().connect() as conn:
        q = _indicator_query(conn)
    return _send(exports.indicators(reader(), q), fmt)


# --- balances and the dictionary --------------------------------------------------------------------------
@api.route(blueprint, "/exports/balances/<balanceId>", summary="A fuel and energy balance's cells in long form "
           "(row, column, value in thousand tce, provenance)", tags=TAGS,
           parameters=[query("format", "File format (f= is the same)", {"type": "string",
                                                                         "enum": list(exports.BALANCE_FORMATS)}),
                       query("f", "File format", {"type": "string", "enum": list(exports.BALANCE_FORMATS)})],
           responses=FILE)
def balance_export(balanceId: str):  # noqa: N803
    check_params(["format", "f"])
    fmt = _format(allowed=exports.BALANCE_FORMATS)
    if not balanceId.isascii() or not balanceId.isdigit() or len(balanceId) > 12:
        raise NotFound(f"no fuel balance '{balanceId}'")
    return _send(exports.balance(engine(), int(balanceId)), fmt)


@api.route(blueprint, "/exports/dictionary", summary="The data dictionary: the columns of every export (name, type, "
           "nullable, title, description, unit), file names, balance row and column codes", tags=TAGS,
           parameters=[query("format", "json (default), csv or xlsx", {"type": "string",
                                                                        "enum": ["json", "csv", "xlsx"]}),
                       query("f", "as format=", {"type": "string", "enum": ["json", "csv", "xlsx"]})],
           responses={"200": doc_response("The dictionary", (JSON, FORMATS["csv"].media_type,
                                                             FORMATS["xlsx"].media_type))})
def dictionary():
    check_params(["format", "f"])
    given = {v.lower() for v in (single("format"), single("f")) if v}
    if given <= {"json"}:
        return json_response(exports_dictionary.dictionary())
    return _send(exports_dictionary.dictionary_export(), _format(allowed=("csv", "xlsx")))
