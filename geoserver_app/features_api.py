"""OGC API Features Parts 1-4 over every registry layer: parse, call a layers/ service, encode.

Each handler declares its own OpenAPI (see geoserver_app/openapi.py), so `/api` is the code.
"""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime

import orjson
from flask import Blueprint, Response, request
from sqlalchemy import text

from geoserver_app import html
from geoserver_app.auth import audit, principal
from geoserver_app.ogc import (
    GEOJSON,
    HTML,
    JSON,
    OPENAPI_JSON,
    base_url,
    check_params,
    config,
    engine,
    json_response,
    link,
    negotiate,
    not_modified_or,
    reader,
    self_links,
    single,
)
from geoserver_app.openapi import api, header, query
from geoserver_app.openapi import json_response as doc_response
from layers import access, edits, features, registry
from layers import crs as crs_mod
from layers.db import transaction
from layers.errors import InvalidParameterValue, MethodNotAllowed, NotFound, PreconditionFailed, UnsupportedMediaType
from layers.registry import Layer

blueprint = Blueprint("features", __name__)

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
]
LANGS = ("cql2-text", "cql2-json", "cql-text")  # cql-text: the older name GDAL sends
QUERY_CQL_JSON = ("application/query-cql-json", "application/cql2+json")
WRITE_TYPES = (GEOJSON, JSON)
PATCH_TYPES = ("application/merge-patch+json", GEOJSON, JSON)

# --- OpenAPI parameter declarations (inlined: GDAL reads them) -----------------------------------------
P_F = query("f", "Response format", {"type": "string", "enum": ["json", "html"]})
P_F_ITEMS = query("f", "Response format", {"type": "string", "enum": ["geojson", "json", "html"]})
P_BBOX = query("bbox", "Only features intersecting this box: minx,miny,maxx,maxy (in bbox-crs, CRS84 by default)",
               {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}, style="form",
               explode=False)
P_LIMIT = query("limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10})
P_OFFSET = query("offset", "Features to skip (paging)", {"type": "integer", "minimum": 0, "default": 0})
P_DATETIME = query("datetime", "Instant or interval (RFC 3339, '..' open) on the time of the last change",
                   {"type": "string"})
P_CRS = query("crs", "CRS of the response geometries", {"type": "string", "format": "uri"})
P_BBOX_CRS = query("bbox-crs", "CRS of bbox", {"type": "string", "format": "uri"})
P_FILTER = query("filter", "CQL2 filter expression", {"type": "string"})
P_FILTER_LANG = query("filter-lang", "Language of filter", {"type": "string", "enum": list(LANGS),
                                                              "default": "cql2-text"})
P_FILTER_CRS = query("filter-crs", "CRS of geometry literals in filter", {"type": "string", "format": "uri"})
P_SORTBY = query("sortby", "Comma-separated properties, each with an optional + or - prefix",
                 {"type": "array", "items": {"type": "string"}}, style="form", explode=False)
P_PROPERTIES = query("properties", "Comma-separated properties to return",
                     {"type": "array", "items": {"type": "string"}}, style="form", explode=False)
P_SKIP_GEOMETRY = query("skipGeometry", "Omit geometries", {"type": "boolean", "default": False})
H_CONTENT_CRS = header("Content-Crs", "CRS of the geometry in the body, as <uri>")
H_IF_MATCH = header("If-Match", "ETag of the version being edited; a stale one gives 412")
ITEMS_PARAMS = [P_F_ITEMS, P_BBOX, P_BBOX_CRS, P_LIMIT, P_OFFSET, P_DATETIME, P_CRS, P_FILTER, P_FILTER_LANG,
                P_FILTER_CRS, P_SORTBY, P_PROPERTIES, P_SKIP_GEOMETRY]
FEATURE_BODY = {"required": True, "content": {GEOJSON: {"schema": {"type": "object"}}}}
TAG = ("Features",)


# --- helpers ------------------------------------------------------------------------------------------
def layer_of(collection_id: str) -> Layer:
    try:
        return registry.get(collection_id)
    except NotFound:
        raise NotFound(f"no collection '{collection_id}'; see /collections") from None


def readable_layer(collection_id: str) -> tuple[Layer, access.ReadRule]:
    """The collection and what of it the caller may read (the access point decides; 401/403 otherwise)."""
    layer = layer_of(collection_id)
    return layer, access.read_rule(principal(), layer)


def offered_crs(conn) -> list[crs_mod.Crs]:
    """CRS84, EPSG:4326, EPSG:3857, and the UTM zone and МСК of each territory with a centre."""
    out = [crs_mod.CRS84, crs_mod.EPSG4326, crs_mod.EPSG3857]
    rows = conn.execute(text("SELECT ST_X(centre) AS lon, ST_Y(centre) AS lat, local_crs FROM cdt.territories "
                             "WHERE centre IS NOT NULL ORDER BY oktmo")).all()
    msk = crs_mod.msk_systems()
    for r in rows:
        for c in (crs_mod.utm(r.lon, r.lat), msk.get(r.local_crs or "")):
            if c is not None and c not in out:
                out.append(c)
    return out


def _bool(name: str) -> bool:
    raw = (single(name) or "false").strip().lower()
    if raw not in ("true", "false"):
        raise InvalidParameterValue(f"{name}={single(name)}: true or false expected")
    return raw == "true"


def _int(name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = single(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d{1,9}", raw.strip()):
        raise InvalidParameterValue(f"{name}={raw} is not a whole number")
    value = int(raw)
    if value < minimum:
        raise InvalidParameterValue(f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidParameterValue(f"{name}={value} is above the maximum of {maximum}")
    return value


def _bbox(raw: str | None) -> list[float] | None:
    if raw is None:
        return None
    parts = raw.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameterValue(f"bbox={raw}: four or six numbers expected") from None
    if len(values) not in (4, 6) or any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise InvalidParameterValue(f"bbox={raw}: four or six finite numbers expected")
    half = len(values) // 2
    if any(values[i] > values[i + half] for i in range(half)):
        raise InvalidParameterValue(f"bbox={raw}: each minimum must not exceed its maximum")
    return values


def _check_geographic_bbox(bbox: list[float], bbox_crs: crs_mod.Crs) -> None:
    x0, y0, x1, y1 = bbox_crs.bbox_to_lonlat_order(bbox[:2] + bbox[-2:] if len(bbox) == 4 else
                                                   [bbox[0], bbox[1], bbox[3], bbox[4]])
    if bbox_crs.geographic and not (x0 >= -180 and x1 <= 180 and y0 >= -90 and y1 <= 90):
        raise InvalidParameterValue("bbox lies outside longitudes -180..180 and latitudes -90..90"
                                    + (" (EPSG:4326 takes latitude first)" if bbox_crs.lat_lon else ""))


def _datetime(raw: str | None):
    if raw is None:
        return None

    def one(value: str):
        if value in ("..", ""):
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameterValue(f"datetime: '{value}' is not an RFC 3339 date-time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    if "/" in raw:
        start, end = raw.split("/", 1)
        interval = (one(start), one(end))
        if interval[0] and interval[1] and interval[0] > interval[1]:
            raise InvalidParameterValue("datetime: the interval ends before it starts")
        return interval
    instant = one(raw)
    if instant is None:
        raise InvalidParameterValue("datetime: an instant or an interval expected")
    end_of_day = instant.replace(hour=23, minute=59, second=59, microsecond=999999)
    return (instant, instant) if "T" in raw else (instant, end_of_day)


def _names(raw: str | None, props: dict, what: str, signed: bool = False) -> list:
    if raw is None:
        return []
    out = []
    for part in (p.strip() for p in raw.split(",")):
        name, asc = part, True
        if signed and part[:1] in ("+", "-"):  # not `in "+-"`: an empty part would match
            name, asc = part[1:].strip(), part[0] == "+"
        if name not in props:
            raise InvalidParameterValue(f"{what}: unknown property '{name}'; known: {', '.join(props)}")
        out.append((name, asc) if signed else name)
    return out


def queryables(layer: Layer) -> dict:
    from layers.cql import Queryable

    out = {n: Queryable(n, p.sql, p.kind) for n, p in features.properties(layer).items() if p.kind != "object"}
    out["id"] = Queryable("id", "t.id", "integer")
    if layer.geometry_column:
        out["geometry"] = Queryable("geometry", f't."{layer.geometry_column}"', "geometry")
    return out


def _number_matched_mode(layer: Layer) -> str:
    mode = config().number_matched.get(layer.name, layer.number_matched)
    return mode if mode in features.NUMBER_MATCHED_MODES else "auto"


# --- landing-level resources -----------------------------------------------------------------------------
@api.route(blueprint, "/conformance", summary="Conformance classes implemented", tags=("Capabilities",),
           parameters=[P_F], responses={"200": doc_response("The conformance classes")})
def conformance():
    check_params(["f"])
    from geoserver_app.processes_api import CONFORMANCE as PROCESSES
    from geoserver_app.tiles_api import CONFORMANCE as TILES

    body = {"conformsTo": CONFORMANCE + TILES + PROCESSES}
    if negotiate() == HTML:
        return html.page("Conformance", "conformance.html", body=body)
    return json_response(body)


@api.route(blueprint, "/api", summary="This API's OpenAPI 3.0 definition", tags=("Capabilities",),
           parameters=[P_F], responses={"200": doc_response("OpenAPI document", (OPENAPI_JSON,))})
def openapi():
    check_params(["f"])
    doc = api.document(base_url(), "CDT: City Digital Twin",
                       "OGC API Features (Parts 1-4) and Tiles over the layers of a city digital twin.")
    _configured_limit(doc)
    _collection_items_paths(doc)
    if negotiate() == HTML:
        return html.page("API definition", "api.html", doc=doc)
    return json_response(doc, media_type=OPENAPI_JSON)


def _configured_limit(doc: dict) -> None:
    """The `limit` this server takes (Config items_default_limit / items_max_limit), not P_LIMIT's defaults.
    The parameter dicts are shared module constants: replace, never mutate."""
    cfg = config()
    schema = {**P_LIMIT["schema"], "maximum": cfg.items_max_limit, "default": cfg.items_default_limit}
    for op in doc["paths"].get("/collections/{collectionId}/items", {}).values():
        op["parameters"] = [{**p, "schema": schema} if p is P_LIMIT else p for p in op["parameters"]]


PARAM_SCHEMA = {"integer": {"type": "integer"}, "number": {"type": "number"}, "boolean": {"type": "boolean"},
                "string": {"type": "string"}, "datetime": {"type": "string", "format": "date-time"},
                "date": {"type": "string", "format": "date"}}


def _collection_items_paths(doc: dict) -> None:
    """`/collections/<id>/items` of each collection, with a query parameter per queryable property (Part 3
    /req/queryables-query-parameters). GDAL's OAPIF driver reads them from this per-collection path and sends
    a WHERE clause to the server (filter=, filter-lang=cql-text) only on properties it finds here."""
    generic = doc["paths"].get("/collections/{collectionId}/items", {}).get("get")
    if generic is None:
        return
    common = [p for p in generic["parameters"] if p["name"] != "collectionId"]
    for layer in registry.all_layers():
        props = [query(n, f"Only features whose {n} equals this value", PARAM_SCHEMA[p.kind])
                 for n, p in features.properties(layer).items() if p.kind in PARAM_SCHEMA and n not in ITEM_PARAM_NAMES]
        doc["paths"][f"/collections/{layer.name}/items"] = {"get": {
            **generic, "operationId": f"items_get_{layer.name}", "summary": f"Features of {layer.title}",
            "parameters": common + props}}
    doc["paths"] = dict(sorted(doc["paths"].items()))


@api.route(blueprint, "/collections", summary="The collections (layers)", tags=("Capabilities",),
           parameters=[P_F], responses={"200": doc_response("Collections")})
def collections():
    check_params(["f"])
    with reader().connect() as conn:
        offered = offered_crs(conn)
        body = {"links": self_links("/collections"),
                "collections": [_collection(conn, lyr, offered) for lyr in registry.all_layers()
                                if access.can_list(principal(), lyr)],
                "crs": [c.uri for c in offered]}
    if negotiate() == HTML:
        return html.page("Collections", "collections.html", body=body)
    return json_response(body)


def _collection(conn, layer: Layer, offered: list[crs_mod.Crs]) -> dict:
    url = f"{base_url()}/collections/{layer.name}"
    scope = access.read_rule(principal(), layer)
    bbox = features.extent(conn, layer, scope)
    times = features.temporal_extent(conn, layer, scope)
    out = {
        "id": layer.name, "title": layer.title, "description": layer.description,
        "itemType": "feature",
        "crs": [c.uri for c in offered] if layer.geometry_column else [],
        "storageCrs": crs_mod.CRS84_URI,
        "extent": {"spatial": {"bbox": [bbox or [-180, -90, 180, 90]], "crs": crs_mod.CRS84_URI},
                   "temporal": {"interval": [times or [None, None]],
                                "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}},
        "links": [
            link(url, "self", JSON, layer.title),
            link(f"{url}?f=html", "alternate", HTML),
            link(f"{url}/items?f=geojson", "items", GEOJSON, "Features as GeoJSON"),
            link(f"{url}/items?f=html", "items", HTML, "Features as HTML"),
            link(f"{url}/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json",
                 "Queryables"),
            link(f"{url}/schema", "http://www.opengis.net/def/rel/ogc/1.0/schema", "application/schema+json",
                 "Schema"),
        ],
        "editable": layer.editable,
        "access": layer.access,
    }
    if layer.geometry_column:
        out["links"].append(link(f"{url}/tiles", "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", JSON,
                                 "Vector tilesets"))
    return out


@api.route(blueprint, "/collections/<collectionId>", summary="One collection", tags=("Capabilities",),
           parameters=[P_F], responses={"200": doc_response("The collection")})
def collection(collectionId: str):
    check_params(["f"])
    layer, _ = readable_layer(collectionId)
    with reader().connect() as conn:
        body = _collection(conn, layer, offered_crs(conn))
    if negotiate() == HTML:
        return html.page(layer.title, "collection.html", body=body)
    return json_response(body)


def _schema(layer: Layer, title: str, for_filter: bool) -> dict:
    props = {n: p.json_schema() for n, p in features.properties(layer).items()
             if not (for_filter and p.kind == "object")}
    if layer.geometry_column:
        geo = {"format": f"geometry-{(layer.geometry_type or 'any').lower().removeprefix('multi')}"}
        if (layer.geometry_type or "").startswith("MULTI"):
            geo["format"] = f"geometry-{layer.geometry_type.lower()}"
        props["geometry"] = {"title": "geometry", **geo, "x-ogc-role": "primary-geometry"}
    props["id"] = {"title": "id", "type": "integer", "readOnly": True, "x-ogc-role": "id"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{base_url()}/collections/{layer.name}/{'queryables' if for_filter else 'schema'}",
            "type": "object", "title": title, "properties": props, "additionalProperties": False}


@api.route(blueprint, "/collections/<collectionId>/queryables", summary="Properties usable in filters",
           tags=TAG, parameters=[P_F], responses={"200": doc_response("JSON Schema", ("application/schema+json",))})
def collection_queryables(collectionId: str):
    check_params(["f"])
    layer, _ = readable_layer(collectionId)
    return json_response(_schema(layer, f"{layer.title}: queryables", True), media_type="application/schema+json")


@api.route(blueprint, "/collections/<collectionId>/schema", summary="Schema of the features", tags=TAG,
           parameters=[P_F], responses={"200": doc_response("JSON Schema", ("application/schema+json",))})
def collection_schema(collectionId: str):
    check_params(["f"])
    layer, _ = readable_layer(collectionId)
    schema = _schema(layer, layer.title, False)
    with reader().connect() as conn:
        for name, values in features.vocabularies(conn, layer).items():
            prop = schema["properties"][name]
            prop["enum"] = [*values, None] if "null" in prop["type"] else list(values)
    return json_response(schema, media_type="application/schema+json")


# --- items ----------------------------------------------------------------------------------------------
ITEM_PARAM_NAMES = [p["name"] for p in ITEMS_PARAMS]


@api.route(blueprint, "/collections/<collectionId>/items", methods=("GET", "POST"),
           summary="Features of the collection (GET: query; POST: create a feature, or query with a CQL2 JSON "
                   "body sent as application/query-cql-json)",
           tags=TAG, parameters=ITEMS_PARAMS + [H_CONTENT_CRS], request_body=FEATURE_BODY,
           responses={"200": doc_response("Features", (GEOJSON, HTML)),
                      "201": {"description": "Created; Location names the new feature"}})
def items(collectionId: str):
    layer = layer_of(collectionId)
    if request.method == "POST":
        if request.mimetype in QUERY_CQL_JSON or _is_cql2_json_query():
            return _items(layer, request.get_data(as_text=True), "cql2-json")
        return _create(layer)
    return _items(layer)


def _is_cql2_json_query() -> bool:
    """A CQL2 JSON expression POSTed as plain application/json (OWSLib's `cql=`, pygeoapi's convention) is a
    query, not a feature to create: it has "op", a GeoJSON Feature has "type"."""
    if request.mimetype != JSON:
        return False
    try:
        body = orjson.loads(request.get_data())
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and "op" in body and "type" not in body


def parse_items_query(conn, layer: Layer, scope: access.ReadRule, *, limit: int, offset: int,
                      number_matched: str = "off", body_filter: str | None = None,
                      body_lang: str | None = None) -> features.ItemsQuery:
    """The query parameters of /collections/{id}/items as an ItemsQuery (also the exports' parameters)."""
    props = features.properties(layer)
    offered = offered_crs(conn) if _needs_crs() else [crs_mod.CRS84]
    bbox_crs = crs_mod.parse(single("bbox-crs"), offered, "bbox-crs")
    bbox = _bbox(single("bbox"))
    if bbox:
        _check_geographic_bbox(bbox, bbox_crs)
    q = features.ItemsQuery(
        crs=crs_mod.parse(single("crs"), offered, "crs"), bbox=bbox, bbox_crs=bbox_crs, limit=limit, offset=offset,
        datetime=_datetime(single("datetime")),
        equals={k: single(k) for k in request.args if k in props},
        sortby=_names(single("sortby"), {**props, "id": None}, "sortby", signed=True),
        properties=_names(single("properties"), props, "properties") if single("properties") is not None
        else None,
        skip_geometry=_bool("skipGeometry"), number_matched=number_matched, scope=scope)
    filter_text = body_filter if body_filter is not None else single("filter")
    if filter_text is not None:
        lang = body_lang or single("filter-lang") or "cql2-text"
        filter_crs = crs_mod.parse(single("filter-crs"), offered, "filter-crs")
        from layers.cql import compile_filter

        q.filter = compile_filter(filter_text, lang, queryables(layer), filter_crs)
    elif single("filter-lang") and single("filter-lang") not in LANGS:
        raise InvalidParameterValue(f"filter-lang must be one of {', '.join(LANGS)}")
    return q


def optional_int(name: str, minimum: int) -> int | None:
    """An integer parameter that may be absent (the exports' limit)."""
    return None if single(name) in (None, "") else _int(name, 0, minimum)


def _items(layer: Layer, body_filter: str | None = None, body_lang: str | None = None) -> Response:
    props = features.properties(layer)
    check_params(ITEM_PARAM_NAMES, props)
    media = negotiate(GEOJSON)
    cfg = config()
    with reader().connect() as conn:
        q = parse_items_query(conn, layer, access.read_rule(principal(), layer),
                              limit=_int("limit", cfg.items_default_limit, 1, cfg.items_max_limit),
                              offset=_int("offset", 0, 0), number_matched=_number_matched_mode(layer),
                              body_filter=body_filter, body_lang=body_lang)
        out_crs = q.crs
        page = features.items(conn, layer, q)
    # A filter POSTed as the body goes into the paging links, which are GETs.
    links = _page_links(layer, q, page, {} if body_filter is None else
                        {"filter": body_filter, "filter-lang": body_lang or "cql2-json"})
    head = {"type": "FeatureCollection", "numberReturned": page.returned,
            "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "links": links}
    if page.matched is not None:
        head["numberMatched"] = page.matched
    headers = {"Content-Crs": f"<{out_crs.uri}>"}
    if media == HTML:
        return html.page(layer.title, "items.html", layer=layer, head=head,
                         features=orjson.loads(f"[{page.features}]"), headers=headers)
    body = orjson.dumps(head)[:-1] + b',"features":[' + page.features.encode() + b"]}"
    return Response(body, mimetype=GEOJSON if media == GEOJSON else JSON, headers=headers)


def _needs_crs() -> bool:
    return any(single(k) not in (None, "", crs_mod.CRS84_URI) for k in ("crs", "bbox-crs", "filter-crs"))


def _page_links(layer: Layer, q: features.ItemsQuery, page: features.Page, extra: dict | None = None
                ) -> list[dict]:
    path = f"{base_url()}/collections/{layer.name}/items"
    args = {k: v for k, v in request.args.items(multi=False) if k not in ("offset", "f")} | (extra or {})
    args["limit"] = str(q.limit)

    def url(offset: int, fmt: str) -> str:
        from urllib.parse import urlencode

        return f"{path}?{urlencode({**args, 'offset': offset, 'f': fmt})}"

    links = [link(url(q.offset, "geojson"), "self", GEOJSON, "This page"),
             link(url(q.offset, "html"), "alternate", HTML, "This page as HTML"),
             link(f"{base_url()}/collections/{layer.name}", "collection", JSON, layer.title)]
    more = page.returned == q.limit and (page.matched is None or q.offset + q.limit < page.matched)
    if more:
        links.append(link(url(q.offset + q.limit, "geojson"), "next", GEOJSON, "Next page"))
    if q.offset > 0:
        links.append(link(url(max(0, q.offset - q.limit), "geojson"), "prev", GEOJSON, "Previous page"))
    return links


# --- one feature ----------------------------------------------------------------------------------------
def etag(fid: int | str, tag: str, variant: str = "") -> str:
    return f'"{fid}.{tag}{"-" + variant if variant else ""}"'


def if_match_tag(fid: str) -> str | None:
    """The row tag named by If-Match (our strong ETags are "<id>.<version>.<created>[-variant]")."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    m = re.fullmatch(r'\s*"(\d+)\.(\d+\.[0-9a-f]+)(?:-[0-9a-f]+)?"\s*', raw)
    if not m or m.group(1) != fid:
        raise PreconditionFailed(f"If-Match {raw} is not an ETag of feature {fid}")
    return m.group(2)


@api.route(blueprint, "/collections/<collectionId>/items/<featureId>",
           methods=("GET", "PUT", "PATCH", "DELETE", "OPTIONS"),
           summary="One feature (GET), replace it (PUT), update it with a JSON merge patch (PATCH), delete it",
           tags=TAG, parameters=[P_F_ITEMS, P_CRS, P_PROPERTIES, H_CONTENT_CRS, H_IF_MATCH],
           request_body=FEATURE_BODY,
           responses={"200": doc_response("The feature", (GEOJSON, HTML), headers={"ETag": {"schema": {
               "type": "string"}}}), "204": {"description": "Deleted"}, "412": {"description": "Stale If-Match"}})
def item(collectionId: str, featureId: str):
    layer = layer_of(collectionId)
    if request.method == "OPTIONS":
        allow = "GET, HEAD, OPTIONS" + (", PUT, PATCH, DELETE" if layer.editable else "")
        return Response(status=204, headers={"Allow": allow})
    if request.method == "PUT":
        return _update(layer, featureId, partial=False)
    if request.method == "PATCH":
        return _update(layer, featureId, partial=True)
    if request.method == "DELETE":
        return _delete(layer, featureId)
    check_params(["f", "crs", "properties"])
    return _feature_response(layer, featureId)


def _feature_response(layer: Layer, fid: str, status: int = 200) -> Response:
    media = negotiate(GEOJSON)
    props = features.properties(layer)
    with reader().connect() as conn:
        offered = offered_crs(conn) if _needs_crs() else [crs_mod.CRS84]
        out_crs = crs_mod.parse(single("crs"), offered, "crs")
        selected = _names(single("properties"), props, "properties") if single("properties") is not None else None
        body, tag = features.feature(conn, layer, fid, out_crs, selected, access.read_rule(principal(), layer))
    url = f"{base_url()}/collections/{layer.name}/items/{fid}"
    links = [link(url, "self", GEOJSON, "This feature"), link(f"{url}?f=html", "alternate", HTML),
             link(f"{base_url()}/collections/{layer.name}", "collection", JSON, layer.title),
             link(f"{url}/history", "version-history", JSON, "History of changes")]
    variant = "" if out_crs is crs_mod.CRS84 and selected is None else \
        format(zlib.crc32(f"{out_crs.uri}|{selected}".encode()), "08x")
    headers = {"ETag": etag(fid, tag, variant), "Content-Crs": f"<{out_crs.uri}>"}
    if media == HTML:
        return html.page(layer.title, "item.html", layer=layer, feature=orjson.loads(body), headers=headers)
    full = body[:-1] + ',"links":' + orjson.dumps(links).decode() + "}"
    resp = Response(full, status=status, mimetype=GEOJSON if media == GEOJSON else JSON, headers=headers)
    return not_modified_or(resp) if status == 200 else resp


# --- transactions (Part 4) ------------------------------------------------------------------------------
def _content_crs(conn) -> crs_mod.Crs:
    raw = request.headers.get("Content-Crs")
    if raw is None:
        return crs_mod.CRS84
    return crs_mod.parse(raw.strip().strip("<>"), offered_crs(conn), "Content-Crs")


def _json_body(allowed: tuple[str, ...]) -> object:
    if request.mimetype not in allowed:
        raise UnsupportedMediaType(f"Content-Type {request.mimetype or '(none)'} is not accepted here; "
                                   f"send {', '.join(allowed)}")
    try:
        return orjson.loads(request.get_data())
    except orjson.JSONDecodeError as exc:
        raise InvalidParameterValue(f"the body is not valid JSON: {exc}") from None


def actor() -> str:
    """Who is editing, as the history and the audit log name them."""
    return principal().actor


def _create(layer: Layer) -> Response:
    check_params(["f"])
    if not layer.editable:
        raise MethodNotAllowed(f"collection {layer.name} is read-only")
    access.edit_grants(principal(), layer)  # who may edit, before anything reads the body
    body = _json_body(WRITE_TYPES)
    with transaction(engine(), actor()) as conn:
        fid, tag = edits.create(conn, layer, body, _content_crs(conn), principal())
    audit(f"{layer.name}.create", "ok", f"{layer.name}/{fid}")
    url = f"{base_url()}/collections/{layer.name}/items/{fid}"
    return json_response({"id": fid, "version": int(tag.split(".")[0]), "links": [link(url, "self", GEOJSON)]},
                         201, headers={"Location": url, "ETag": etag(fid, tag)})


def _update(layer: Layer, fid: str, partial: bool) -> Response:
    check_params(["f"])
    if not layer.editable:
        raise MethodNotAllowed(f"collection {layer.name} is read-only")
    access.edit_grants(principal(), layer)  # who may edit, before anything reads the body
    body = _json_body(PATCH_TYPES if partial else WRITE_TYPES)
    with transaction(engine(), actor()) as conn:
        edits.update(conn, layer, fid, body, _content_crs(conn), if_match_tag(fid), principal(), partial=partial)
    audit(f"{layer.name}.{'patch' if partial else 'replace'}", "ok", f"{layer.name}/{fid}")
    return _feature_response(layer, fid)


def _delete(layer: Layer, fid: str) -> Response:
    check_params(["f"])
    if not layer.editable:
        raise MethodNotAllowed(f"collection {layer.name} is read-only")
    access.edit_grants(principal(), layer)  # who may edit, before anything reads the body
    with transaction(engine(), actor()) as conn:
        edits.delete(conn, layer, fid, if_match_tag(fid), principal())
    audit(f"{layer.name}.delete", "ok", f"{layer.name}/{fid}")
    return Response(status=204)


@api.route(blueprint, "/collections/<collectionId>/items/<featureId>/history",
           summary="Every version of the feature: who, when, before and after", tags=TAG, parameters=[P_F],
           responses={"200": doc_response("History")})
def item_history(collectionId: str, featureId: str):
    check_params(["f"])
    layer, rule = readable_layer(collectionId)
    with reader().connect() as conn:
        versions = edits.history(conn, layer, featureId, rule)
    url = f"{base_url()}/collections/{layer.name}/items/{featureId}"
    return json_response({"collection": layer.name, "id": featureId, "versions": versions,
                          "links": [link(f"{url}/history", "self", JSON), link(url, "about", GEOJSON)]})


@api.route(blueprint, "/collections/<collectionId>/items/<featureId>/history/<version>/revert", methods=("POST",),
           summary="Make the feature as it was at this version again (a new version)", tags=TAG,
           parameters=[H_IF_MATCH], responses={"200": doc_response("The reverted feature", (GEOJSON,))})
def item_revert(collectionId: str, featureId: str, version: str):
    check_params(["f"])
    layer = layer_of(collectionId)
    if not re.fullmatch(r"[0-9]{1,9}", version):  # not isdigit(): "²" is a digit int() refuses
        raise NotFound(f"no version '{version}'")
    with transaction(engine(), actor()) as conn:
        edits.revert(conn, layer, featureId, int(version), if_match_tag(featureId), principal())
    audit(f"{layer.name}.revert", "ok", f"{layer.name}/{featureId}", {"to_version": int(version)})
    return _feature_response(layer, featureId)
