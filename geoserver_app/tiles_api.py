"""OGC API - Tiles: Mapbox vector tiles of each collection and of the dataset's basemap, and TileJSON 3.0.

Thin handlers over `layers.tiles`. A tile carries a strong ETag (a hash of its bytes) and a short max-age:
edits drop cached tiles at once, so clients revalidate (If-None-Match -> 304) soon after. A tile without
features, including any tile at a zoom outside its layers' min/max zoom, is 204 No Content (OGC API - Tiles
allows 204 for an empty tile); a tile address outside the tile matrix set is 400, an unknown collection or
tile matrix set 404.
"""

from __future__ import annotations

import math

from flask import Blueprint, Response, request

from geoserver_app.auth import principal
from geoserver_app.ogc import JSON, base_url, engine, json_response, link
from geoserver_app.openapi import api, header
from geoserver_app.openapi import json_response as doc_response
from layers import access, tiles
from layers.errors import NotFound
from layers.tiles import Tileset

blueprint = Blueprint("tiles", __name__)

MAX_AGE = 60  # seconds: short, since an edit invalidates tiles immediately
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
TAGS = ("Tiles",)
TILEJSON_TYPES = {"integer": "Number", "number": "Number", "boolean": "Boolean", "string": "String"}

_CONF = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
CONFORMANCE = [_CONF + c for c in ("core", "tileset", "tilesets-list", "geodata-tilesets", "dataset-tilesets", "mvt",
                                   "oas30")] + [
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]

TILE_RESPONSES = {
    "200": {"description": "A Mapbox vector tile", "headers": {"ETag": {"schema": {"type": "string"}}},
            "content": {tiles.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
    "204": {"description": "Empty tile: no feature here, or a zoom outside the layers' zoom range"},
    "304": {"description": "Not modified (If-None-Match names the tile's ETag)"},
}
TILE_PARAMS = [header("If-None-Match", "ETag of a copy the client holds: 304 if the tile is unchanged")]


def _href(path: str) -> str:
    return f"{base_url()}/{path}"


def _base(ts: Tileset) -> str:
    return "tiles" if ts.name == tiles.BASEMAP else f"collections/{ts.name}/tiles"


# --- tile matrix sets -------------------------------------------------------------------------------


@api.route(blueprint, "/tileMatrixSets", summary="Tile matrix sets offered", tags=TAGS,
           responses={"200": doc_response("The tile matrix sets")})
def tile_matrix_sets():
    sets = []
    for tms_id in tiles.tile_matrix_set_ids():
        tms = tiles.tile_matrix_set(tms_id)
        sets.append({"id": tms_id, "title": tms.title, "uri": tms.uri, "crs": tms.crs.srs,
                     "links": [link(_href(f"tileMatrixSets/{tms_id}"), "self", JSON, tms.title)]})
    return json_response({"tileMatrixSets": sets, "links": [link(_href("tileMatrixSets"), "self", JSON)]})


@api.route(blueprint, "/tileMatrixSets/<tileMatrixSetId>", summary="One tile matrix set (OGC 2D TMS JSON)",
           tags=TAGS, responses={"200": doc_response("The tile matrix set")})
def tile_matrix_set(tileMatrixSetId: str):
    return json_response(tiles.tile_matrix_set(tileMatrixSetId).model_dump(exclude_none=True, mode="json"))


# --- tilesets of a collection and of the dataset ------------------------------------------------------


@api.route(blueprint, "/collections/<collectionId>/tiles", summary="Vector tilesets of a collection", tags=TAGS,
           responses={"200": doc_response("The tilesets")})
def collection_tilesets(collectionId: str):
    return json_response(_tilesets(_readable_tileset(collectionId)))


@api.route(blueprint, "/tiles", summary="Vector tilesets of the dataset (the basemap)", tags=TAGS,
           responses={"200": doc_response("The tilesets")})
def dataset_tilesets():
    return json_response(_tilesets(tiles.basemap()))


@api.route(blueprint, "/collections/<collectionId>/tiles/<tileMatrixSetId>", summary="A collection's tileset",
           tags=TAGS, responses={"200": doc_response("Tileset metadata")})
def collection_tileset(collectionId: str, tileMatrixSetId: str):
    return json_response(_tileset(_readable_tileset(collectionId), tileMatrixSetId))


@api.route(blueprint, "/tiles/<tileMatrixSetId>", summary="The basemap tileset", tags=TAGS,
           responses={"200": doc_response("Tileset metadata")})
def dataset_tileset(tileMatrixSetId: str):
    return json_response(_tileset(tiles.basemap(), tileMatrixSetId))


@api.route(blueprint, "/collections/<collectionId>/tiles/<tileMatrixSetId>/<tileMatrix>/<tileRow>/<tileCol>",
           summary="A vector tile of a collection", tags=TAGS, parameters=TILE_PARAMS, responses=TILE_RESPONSES)
def collection_tile(collectionId: str, tileMatrixSetId: str, tileMatrix: str, tileRow: str, tileCol: str):
    return _tile(_readable_tileset(collectionId), tileMatrixSetId, tileMatrix, tileRow, tileCol)


@api.route(blueprint, "/tiles/<tileMatrixSetId>/<tileMatrix>/<tileRow>/<tileCol>",
           summary="A vector tile of the basemap", tags=TAGS, parameters=TILE_PARAMS, responses=TILE_RESPONSES)
def dataset_tile(tileMatrixSetId: str, tileMatrix: str, tileRow: str, tileCol: str):
    return _tile(tiles.basemap(), tileMatrixSetId, tileMatrix, tileRow, tileCol)


@api.route(blueprint, "/collections/<collectionId>/tiles/<tileMatrixSetId>/tilejson.json",
           summary="TileJSON 3.0 of a collection's tileset (WebMercatorQuad)", tags=TAGS,
           responses={"200": doc_response("TileJSON")})
def collection_tilejson(collectionId: str, tileMatrixSetId: str):
    return _tilejson(_readable_tileset(collectionId), tileMatrixSetId)


@api.route(blueprint, "/tiles/<tileMatrixSetId>/tilejson.json", summary="TileJSON 3.0 of the basemap (WebMercatorQuad)",
           tags=TAGS, responses={"200": doc_response("TileJSON")})
def dataset_tilejson(tileMatrixSetId: str):
    return _tilejson(tiles.basemap(), tileMatrixSetId)


# --- encoding ---------------------------------------------------------------------------------------


def _readable_tileset(collection_id: str) -> Tileset:
    """A collection's tileset, if the caller may read the collection (the access point decides: 401/403)."""
    ts = tiles.collection_tileset(collection_id)
    access.read_rule(principal(), ts.layers[0])
    return ts


def _tile(ts: Tileset, tms_id: str, tile_matrix: str, tile_row: str, tile_col: str) -> Response:
    # The access point decides what each layer shows this caller: a collection the caller may not read is
    # refused (401/403); in the basemap it is left out; restricted rows never enter the tile.
    who = principal()
    if len(ts.layers) == 1:
        rules = {ts.layers[0].name: access.read_rule(who, ts.layers[0])}
    else:
        rules = {lyr.name: access.read_rule(who, lyr) for lyr in ts.layers if access.can_list(who, lyr)}
    address = tiles.tile_address(tms_id, tile_matrix, tile_row, tile_col)
    tile = tiles.get_tile(engine(), ts, address, rules)
    not_modified = request.if_none_match.contains_weak(tile.etag)
    if tile.data and not not_modified:
        resp = Response(tile.data, mimetype=tiles.MEDIA_TYPE)
    else:
        resp = Response(status=304 if not_modified else 204)
        del resp.headers["Content-Type"]
    resp.set_etag(tile.etag)
    shared = all(lyr.access == "public" for lyr in ts.layers if lyr.name in rules)
    resp.headers["Cache-Control"] = f"{'public' if shared else 'private'}, max-age={MAX_AGE}"
    resp.headers["X-Tile-Cache"] = "hit" if tile.cached else "miss"
    return resp


def _tile_template(ts: Tileset, tms_id: str) -> str:
    return _href(f"{_base(ts)}/{tms_id}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}")


def _tilesets(ts: Tileset) -> dict:
    entries = []
    for tms_id in tiles.tile_matrix_set_ids():
        tms = tiles.tile_matrix_set(tms_id)
        entries.append({
            "title": f"{ts.title} ({tms_id})", "dataType": "vector", "crs": tms.crs.srs, "tileMatrixSetURI": tms.uri,
            "links": [link(_href(f"{_base(ts)}/{tms_id}"), "self", JSON, f"{ts.title} tileset in {tms_id}"),
                      link(_href(f"tileMatrixSets/{tms_id}"), OGC_REL + "tiling-scheme", JSON, tms.title),
                      link(_tile_template(ts, tms_id), "item", tiles.MEDIA_TYPE, "Tiles", templated=True)]})
    return {"tilesets": entries, "links": [link(_href(_base(ts)), "self", JSON, f"{ts.title} tilesets")]}


def _tileset(ts: Tileset, tms_id: str) -> dict:
    tms = tiles.tile_matrix_set(tms_id)
    base = f"{_base(ts)}/{tms_id}"
    links = [link(_href(base), "self", JSON, f"{ts.title} tileset"),
             link(_href(f"tileMatrixSets/{tms_id}"), OGC_REL + "tiling-scheme", JSON, tms.title),
             link(_tile_template(ts, tms_id), "item", tiles.MEDIA_TYPE, "Mapbox vector tiles", templated=True)]
    if tms_id == tiles.REFERENCE_TMS:
        links.append(link(_href(f"{base}/tilejson.json"), "describedby", JSON, "TileJSON 3.0"))
    if ts.name != tiles.BASEMAP:
        links.append(link(_href(f"collections/{ts.name}"), OGC_REL + "geodata", JSON, ts.title))
    layers = []
    for layer in ts.layers:
        zooms = tiles.zoom_range(tms_id, layer.min_zoom, layer.max_zoom)
        if zooms is None:
            continue
        entry = {"id": layer.name, "title": layer.title, "description": layer.description, "dataType": "vector",
                 "minTileMatrix": str(zooms[0]), "maxTileMatrix": str(zooms[1]),
                 "propertiesSchema": {"type": "object", "properties": {
                     n: {"type": t} for n, t in tiles.properties_schema(layer).items()}},
                 "links": [link(_href(f"collections/{layer.name}"), OGC_REL + "geodata", JSON, layer.title)]}
        if (dim := tiles.geometry_dimension(layer)) is not None:
            entry["geometryDimension"] = dim
        layers.append(entry)
    doc = {"title": ts.title, "description": ts.description, "dataType": "vector", "crs": tms.crs.srs,
           "tileMatrixSetURI": tms.uri, "links": links, "layers": layers}
    extent = tiles.data_extent(engine(), ts)
    if extent:
        doc["boundingBox"] = {"lowerLeft": list(extent[:2]), "upperRight": list(extent[2:]), "crs": CRS84}
    return doc


def _tilejson(ts: Tileset, tms_id: str) -> Response:
    tiles.tile_matrix_set(tms_id)  # 404 for an unknown one
    if tms_id != tiles.REFERENCE_TMS:
        raise NotFound(f"TileJSON describes {tiles.REFERENCE_TMS} tiles only; "
                       f"see /{_base(ts)}/{tms_id} for the {tms_id} tileset")
    max_zoom = min(ts.max_zoom, tiles.tile_matrix_set(tms_id).maxzoom)
    doc = {
        "tilejson": "3.0.0", "name": ts.title, "description": ts.description, "scheme": "xyz",
        # TileJSON names the placeholders; the order is the route's ({tileMatrix}/{tileRow}/{tileCol}).
        "tiles": [_href(f"{_base(ts)}/{tms_id}/{{z}}/{{y}}/{{x}}")],
        "minzoom": ts.min_zoom, "maxzoom": max_zoom,
        "vector_layers": [{"id": layer.name, "description": layer.title, "minzoom": layer.min_zoom,
                           "maxzoom": min(layer.max_zoom, max_zoom),
                           "fields": {n: TILEJSON_TYPES[t] for n, t in tiles.properties_schema(layer).items()}}
                          for layer in ts.layers],
    }
    extent = tiles.data_extent(engine(), ts)
    if extent:
        west, south, east, north = extent
        # The zoom at which the data's extent spans about one tile, within the tileset's zooms.
        zoom = math.floor(math.log2(360 / max(east - west, north - south, 1e-9)))
        doc["bounds"] = [west, south, east, north]
        doc["center"] = [(west + east) / 2, (south + north) / 2, max(ts.min_zoom, min(zoom, max_zoom))]
    return json_response(doc, media_type=JSON)
