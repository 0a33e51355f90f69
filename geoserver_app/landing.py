"""Landing page and health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template_string, request
from sqlalchemy.exc import SQLAlchemyError

from geoserver_app.auth import principal
from geoserver_app.ogc import HTML, negotiate
from geoserver_app.openapi import api, query
from geoserver_app.openapi import json_response as doc_response
from layers import access, catalog, registry

blueprint = Blueprint("landing", __name__)


def _engine():
    return current_app.extensions["cdt_reader"]


# Declared through `api.route` like every other handler, so /api describes them too.
@api.route(blueprint, "/health", summary="Service status: database reachable, migrations current",
           tags=("Capabilities",), responses={"200": doc_response("Healthy"), "503": {"description": "Unhealthy"}})
def health():
    try:
        with _engine().connect() as conn:
            state = catalog.health(conn)
    except SQLAlchemyError as exc:
        return jsonify({"status": "fail", "database": "unreachable",
                        "description": str(exc.orig if hasattr(exc, "orig") else exc).splitlines()[0]}), 503
    ok = state["migrations_current"]
    return jsonify({"status": "pass" if ok else "fail", **state}), 200 if ok else 503


@api.route(blueprint, "/", summary="Landing page", tags=("Capabilities",),
           parameters=[query("f", "Response format", {"type": "string", "enum": ["json", "html"]})],
           responses={"200": doc_response("The landing page", ("application/json", "text/html"))})
def landing():
    # A browser asking for `/` gets the map client; `?f=html` is the OGC API landing page as HTML.
    if "f" not in request.args and negotiate() == HTML:
        from geoserver_app import web

        return web.index()
    with _engine().connect() as conn:
        territories = catalog.territories(conn)
        # Only the layers this caller may read: even the size of a restricted layer is not for everyone.
        who = principal()
        layers = [s for s in catalog.layer_summaries(conn) if access.can_list(who, registry.get(s["name"]))]
    body = {
        "title": "CDT: City Digital Twin",
        "description": "A geospatial server over PostGIS for territorial governance.",
        "territories": territories,
        "layers": layers,
        "links": _links(),
    }
    # JSON unless the client prefers HTML (browsers do); OWSLib sends Accept: */* and parses JSON.
    if negotiate() != HTML:
        return jsonify(body)
    return render_template_string(LANDING_HTML, **body)


def _links() -> list[dict]:
    """The OGC API landing page links (OGC API Common / Features Part 1, /req/core/root-success)."""
    root = request.url_root.rstrip("/")
    return [
        {"rel": "self", "href": f"{root}/?f=json", "type": "application/json", "title": "This document"},
        {"rel": "alternate", "href": f"{root}/?f=html", "type": "text/html", "title": "This document as HTML"},
        {"rel": "service-desc", "href": f"{root}/api", "type": "application/vnd.oai.openapi+json;version=3.0",
         "title": "The API definition (OpenAPI 3.0)"},
        {"rel": "service-doc", "href": f"{root}/api?f=html", "type": "text/html", "title": "The API, readable"},
        {"rel": "conformance", "href": f"{root}/conformance", "type": "application/json",
         "title": "Conformance classes"},
        {"rel": "data", "href": f"{root}/collections", "type": "application/json", "title": "Collections"},
        {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes", "href": f"{root}/tileMatrixSets",
         "type": "application/json", "title": "Tile matrix sets"},
        {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", "href": f"{root}/tiles",
         "type": "application/json", "title": "Base map vector tiles"},
        {"rel": "http://www.opengis.net/def/rel/ogc/1.0/processes", "href": f"{root}/processes",
         "type": "application/json", "title": "Processes (OGC API Processes)"},
        {"rel": "http://www.opengis.net/def/rel/ogc/1.0/job-list", "href": f"{root}/jobs", "type": "application/json",
         "title": "Jobs"},
        {"rel": "service-status", "href": f"{root}/health", "type": "application/json", "title": "Health"},
    ]


LANDING_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>body{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem}
table{border-collapse:collapse;width:100%;margin-bottom:2rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;
text-align:left}td.n{text-align:right}</style></head>
<body><h1>{{ title }}</h1><p>{{ description }}</p>
<h2>Territories</h2>
<table><tr><th>OKTMO</th><th>Name</th><th>Level</th><th>Population</th><th>Area, km²</th></tr>
{% for t in territories %}<tr><td>{{ t.oktmo }}</td><td>{{ t.name }}</td><td>{{ t.level }}</td>
<td class="n">{{ "{:,}".format(t.population) if t.population else "" }}</td>
<td class="n">{{ "%.1f"|format(t.area_km2) if t.area_km2 else "" }}</td></tr>{% endfor %}</table>
<h2>Layers</h2>
<table><tr><th>Layer</th><th>Title</th><th>Features</th><th>Access</th></tr>
{% for l in layers %}<tr><td>{{ l.name }}</td><td>{{ l.title }}</td><td class="n">{{ "{:,}".format(l.features) }}</td>
<td>{{ l.access }}</td></tr>{% endfor %}</table>
<p><a href="/collections?f=html">Collections (OGC API Features)</a> · <a href="/api?f=html">API</a> ·
<a href="/conformance?f=html">Conformance</a> · <a href="/health">Service status</a> ·
<a href="/?f=json">This page as JSON</a></p>
</body></html>"""
