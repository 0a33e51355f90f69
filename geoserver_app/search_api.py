"""The map client's search box over HTTP: `GET /search?q=...` (service: `layers.search`)."""

from __future__ import annotations

import re

from flask import Blueprint

from geoserver_app.auth import principal
from geoserver_app.ogc import check_params, json_response, reader, single
from geoserver_app.openapi import api, query
from geoserver_app.openapi import json_response as doc_response
from layers import search
from layers.errors import InvalidParameterValue

blueprint = Blueprint("search", __name__)


@api.route(blueprint, "/search", summary="Search box: buildings by address, parcels by cadastral number, "
           "facilities by name or address, territories by name or OKTMO", tags=("Search",),
           parameters=[query("q", "The text: part of an address or name, a cadastral number (or its beginning), "
                                  "or an OKTMO code",
                             {"type": "string", "minLength": search.MIN_LENGTH, "maxLength": search.MAX_LENGTH},
                             required=True),
                       query("limit", "At most this many results, best first, mixed across kinds",
                             {"type": "integer", "minimum": 1, "maximum": search.MAX_LIMIT,
                              "default": search.DEFAULT_LIMIT}),
                       query("territory", "Only results in this territory (OKTMO) and the territories within it",
                             {"type": "string", "pattern": r"^\d{8}(\d{3})?$"})],
           responses={"200": doc_response("The query and its results: collection, id, label, kind, "
                                          "bbox and center (CRS84, null without geometry)")})
def search_box():
    check_params(["q", "limit", "territory", "f"])
    q = single("q")
    if q is None:
        raise InvalidParameterValue("q is required: the text to search for")
    limit = _limit(single("limit"))
    territory = single("territory")
    with reader().connect() as conn:
        results = search.search(conn, principal(), q, limit, territory)
    return json_response({"query": q, "results": results})


def _limit(raw: str | None) -> int:
    if raw is None:
        return search.DEFAULT_LIMIT
    # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= search.MAX_LIMIT:
        raise InvalidParameterValue(f"limit must be a whole number from 1 to {search.MAX_LIMIT}, not '{raw[:20]}'")
    return int(raw)
