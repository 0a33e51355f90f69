"""Bulk upserts for external systems (layer records, indicator values, Rosstat БД ПМО files) and the document of
the stable URLs they and BI tools use. Parse, authorize, call layers/bulk.py, encode the report."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
from flask import Blueprint, request
from werkzeug.utils import secure_filename

from geoserver_app.auth import audit, principal
from geoserver_app.features_api import layer_of, offered_crs
from geoserver_app.ogc import base_url, check_params, config, engine, json_response, single
from geoserver_app.openapi import api, query
from geoserver_app.openapi import json_response as doc_response
from layers import access, bulk, registry
from layers import crs as crs_mod
from layers.db import transaction
from layers.errors import InvalidParameterValue, MethodNotAllowed, UnsupportedMediaType
from planning.rosstat import read_bdmo
from planning.series_store import import_series, territory_ids

blueprint = Blueprint("bulk", __name__)
TAGS = ("Bulk",)
CSV = "text/csv"
JSON_TYPES = ("application/json", "application/geo+json")
P_MODE = query("mode", "all_or_nothing (default: any invalid record, nothing written, 422) or valid_only",
               {"type": "string", "enum": list(bulk.MODES), "default": "all_or_nothing"})
REPORT = {"200": doc_response("The report: counts and, per record, index or line, key, status, messages"),
          "401": {"description": "Not signed in"}, "403": {"description": "Your grants do not allow it"},
          "413": {"description": "Body or record count above the limits"},
          "422": doc_response("all_or_nothing with invalid records: nothing written, the full report")}


def _body_kind() -> str:
    if request.mimetype == CSV:
        return "csv"
    if request.mimetype in JSON_TYPES:
        return "json"
    raise UnsupportedMediaType(f"Content-Type {request.mimetype or '(none)'} is not accepted here; send "
                               f"{', '.join((*JSON_TYPES, CSV))}")


def _json() -> object:
    try:
        return orjson.loads(request.get_data())
    except orjson.JSONDecodeError as exc:
        raise InvalidParameterValue(f"the body is not valid JSON: {exc}") from None


def _refused(exc: bulk.BulkRefused):
    return json_response(exc.to_json(), 422)


@api.route(blueprint, "/bulk/collections/<collectionId>", methods=("POST",), tags=TAGS,
           summary="Upsert many records of an editable layer (GeoJSON FeatureCollection, {records: [...]} or CSV) "
                   "by id or source + source_id, with a validation report",
           parameters=[P_MODE, query("source", "source of every record that gives none", {"type": "string"}),
                       query("crs", "CRS of the coordinates (default CRS84)", {"type": "string", "format": "uri"})],
           request_body={"required": True, "content": {
               "application/geo+json": {"schema": {"type": "object"}},
               "application/json": {"schema": {"type": "object"}},
               CSV: {"schema": {"type": "string"}}}},
           responses=REPORT)
def bulk_collection(collectionId: str):  # noqa: N803 - the path parameter's name in /api
    check_params(["mode", "source", "crs"])
    layer = layer_of(collectionId)
    if not layer.editable:
        raise MethodNotAllowed(f"collection {layer.name} is read-only")
    access.edit_grants(principal(), layer)  # who may edit, before anything reads the body
    mode = bulk.parse_mode(single("mode"))
    kind = _body_kind()
    try:
        with transaction(engine(), principal().actor) as conn:
            crs = crs_mod.parse(single("crs"), offered_crs(conn), "crs")
            items = (bulk.items_from_csv(request.get_data(), layer, crs) if kind == "csv"
                     else bulk.items_from_json(_json()))
            report = bulk.upsert_records(conn, layer, items, principal(), crs, mode, single("source") or None)
    except bulk.BulkRefused as exc:
        audit(f"{layer.name}.bulk", "refused", layer.name, {"counts": exc.context["counts"]})
        return _refused(exc)
    audit(f"{layer.name}.bulk", "ok", layer.name, {"counts": report["counts"], "mode": mode})
    return json_response(report)


@api.route(blueprint, "/bulk/indicator-values", methods=("POST",), tags=TAGS,
           summary="Upsert indicator values ({values: [...]} or CSV: indicator, territory (OKTMO), year, "
                   "value_type, value, scenario) with a validation report",
           parameters=[P_MODE],
           request_body={"required": True, "content": {"application/json": {"schema": {"type": "object"}},
                                                        CSV: {"schema": {"type": "string"}}}},
           responses=REPORT)
def bulk_indicator_values():
    check_params(["mode"])
    bulk.indicator_scope(principal())  # who may write, before anything reads the body
    mode = bulk.parse_mode(single("mode"))
    kind = _body_kind()
    try:
        with transaction(engine(), principal().actor) as conn:
            items = bulk.values_from_csv(request.get_data()) if kind == "csv" else bulk.values_from_json(_json())
            report = bulk.upsert_indicator_values(conn, items, principal(), mode)
    except bulk.BulkRefused as exc:
        audit("indicator_values.bulk", "refused", "indicator_values", {"counts": exc.context["counts"]})
        return _refused(exc)
    audit("indicator_values.bulk", "ok", "indicator_values", {"counts": report["counts"], "mode": mode})
    return json_response(report)


@api.route(blueprint, "/bulk/indicator-values/rosstat", methods=("POST",), tags=TAGS,
           summary="Import a Rosstat БД ПМО export (CSV or XLSX, multipart field `file`) into indicator values",
           parameters=[query("value_type", "value type of rows that give none", {"type": "string",
                                                                                  "enum": ["actual", "forecast",
                                                                                           "target"]}),
                       query("skip_unknown", "skip OKTMO codes that are not territories instead of refusing",
                             {"type": "boolean", "default": False})],
           request_body={"required": True, "content": {"multipart/form-data": {"schema": {
               "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}},
           responses={"200": doc_response("The import report (indicators, values inserted/updated/unchanged)"),
                      "422": doc_response("Nothing written: the problems of the file")})
def bulk_rosstat():
    check_params(["value_type", "skip_unknown"])
    who = principal()
    scope = bulk.indicator_scope(who)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidParameterValue("send the file as multipart/form-data field 'file'")
    skip = (single("skip_unknown") or "false").lower()
    if skip not in ("true", "false"):
        raise InvalidParameterValue("skip_unknown: true or false")
    # The file's own name is kept: it is the values' source (rosstat-bdmo:<file>), so a re-upload is idempotent.
    name = secure_filename(upload.filename) or "upload.csv"
    with tempfile.TemporaryDirectory(prefix="cdt-rosstat-") as tmp:
        path = Path(tmp) / name
        upload.save(path)
        if scope is not None:
            table = read_bdmo(path)
            with engine().connect() as conn:
                found = territory_ids(conn, table.oktmos())
            outside = sorted(o for o, tid in found.items() if tid not in set(scope))
            if outside:
                raise access.Forbidden(f"the file has values of territories outside yours: {', '.join(outside)}")
        try:
            report = import_series(engine(), path, who.actor, value_type=single("value_type") or "actual",
                                   skip_unknown=skip == "true")
        except InvalidParameterValue as exc:
            audit("indicator_values.rosstat", "refused", name, {"reason": exc.detail[:500]})
            return json_response({**exc.to_json(), "written": False}, 422)
    audit("indicator_values.rosstat", "ok", name, {k: report[k] for k in ("values_inserted", "values_updated")})
    return json_response({**report, "written": True})


@api.route(blueprint, "/bulk", tags=TAGS, summary="Stable URLs for external systems and BI refresh: bulk "
                                                  "upserts, exports, formats, limits, modes and authentication",
           responses={"200": doc_response("The document")})
def bulk_document():
    check_params(["f"])
    root = base_url()
    editable = [lyr.name for lyr in registry.all_layers() if lyr.editable]
    return json_response({
        "title": "CDT for external systems and BI tools",
        "authentication": {
            "scheme": "Authorization: Bearer <token>",
            "create_token": ["cdt users token <login> --name <what for>   (CLI; printed once)",
                             f"POST {root}/auth/tokens from a signed-in session (shown once)"],
            "list_tokens": ["cdt users tokens [<login>]", f"GET {root}/auth/tokens"],
            "revoke_token": ["cdt users revoke-token <id>", f"DELETE {root}/auth/tokens/<id>"]},
        "limits": {"max_records_per_request": bulk.MAX_RECORDS, "max_body_bytes": config().max_request_bytes,
                   "over_the_limits": "413 PayloadTooLarge: split the upload"},
        "modes": {"all_or_nothing": "default: any invalid record, nothing is written; 422 with the full report "
                                    "(statuses of the valid records say what would have happened)",
                  "valid_only": "the valid records are written (200), the invalid ones reported"},
        "report": {"counts": "inserted, updated, unchanged, invalid", "written": "whether anything was committed",
                   "records": "per record: index (JSON, 0-based) or line (CSV, the header is line 1), key, id, "
                              "status (inserted, updated, unchanged, invalid) and messages"},
        "endpoints": [
            {"method": "POST", "url": f"{root}/bulk/collections/{{collectionId}}", "collections": editable,
             "formats": ["application/geo+json: a FeatureCollection (properties with source, source_id)",
                         'application/json: {"records": [{"id"?, "source", "source_id", "geometry": GeoJSON or '
                         'WKT, "properties": {...} or the properties at the top level}]}',
                         "text/csv: a column per property, id / source / source_id, geometry_wkt or lon + lat"],
             "parameters": {"mode": list(bulk.MODES), "source": "source of records that give none",
                            "crs": "CRS of the coordinates, default CRS84 (see /collections/{id} crs list)"},
             "key": "id (an existing feature) or source + source_id; a matched feature gets only the properties "
                    "given (null clears one), a new one needs the required properties and a geometry",
             "authorization": "the collection's editing roles; each record (old and new geometry) within the "
                              "territories of your grants"},
            {"method": "POST", "url": f"{root}/bulk/indicator-values",
             "formats": ['application/json: {"values": [{"indicator", "territory": OKTMO, "year", "value_type": '
                         '"actual" | "forecast" | "target", "value", "scenario"?}]}',
                         "text/csv: columns indicator, territory, year, value_type, value, scenario"],
             "parameters": {"mode": list(bulk.MODES)},
             "rules": "roles federal, regional, municipal, analyst, for the territories of their grants (and their "
                      "descendants); computed indicators (measure, expr, family) take forecast and target values "
                      "only, their actual values come from the engine; series indicators take all three; the "
                      "source of written values is bulk:<actor>"},
            {"method": "POST", "url": f"{root}/bulk/indicator-values/rosstat",
             "formats": ["multipart/form-data field 'file': a Rosstat БД ПМО export (CSV or XLSX)"],
             "parameters": {"value_type": "for rows without one (default actual)", "skip_unknown": "true/false"}},
            {"method": "GET", "url": f"{root}/exports/dictionary",
             "description": "the exports BI tools refresh from (stable URLs, same Bearer token)"},
            {"method": "GET", "url": f"{root}/collections/{{collectionId}}/items",
             "description": "OGC API Features: GeoJSON, paging, filters (CQL2)"},
            {"method": "GET", "url": f"{root}/api", "description": "OpenAPI 3.0 of every route"}]})
