"""The map client: its page at `/` (for browsers), its files under `/web/` (Flask's static route over `web/`,
front-end packages from `web/node_modules`, installed by `npm ci`), and `/map/config`, the one document it
starts from."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, send_file

from geoserver_app.auth import principal
from geoserver_app.config import PROJECT_ROOT
from geoserver_app.ogc import check_params, config, json_response, reader
from geoserver_app.openapi import api
from geoserver_app.openapi import json_response as doc_response
from layers import map_layers

WEB_DIR = PROJECT_ROOT / "web"
blueprint = Blueprint("web", __name__)
NO_STORE = {"Cache-Control": "no-store"}


def _csp() -> str:
    """Only this origin, plus the online base map's tile host when one is configured."""
    img = ["'self'", "data:", "blob:"]
    if config().basemap_url:
        parts = urlsplit(config().basemap_url)
        img.append(f"{parts.scheme}://{parts.netloc.replace('{s}', '*')}")
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src {' '.join(img)}; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
            "form-action 'self'")


def index() -> Response:
    """The single page of the map client."""
    if not (WEB_DIR / "node_modules" / "leaflet").is_dir():
        return Response("<!doctype html><title>CDT</title><p>The map client's packages are not installed: run "
                        "<code>scripts/run.sh</code> (or <code>npm ci</code> in <code>web/</code>).</p>",
                        503, {"Content-Type": "text/html; charset=utf-8"})
    resp = send_file(WEB_DIR / "index.html", mimetype="text/html", max_age=0)
    resp.headers["Content-Security-Policy"] = _csp()
    return resp


@api.route(blueprint, "/map/config", summary="What the map client shows you: layers with styles, territories, "
           "base maps, where the map opens", tags=("Map client",),
           responses={"200": doc_response("Map configuration for the signed-in user (or the public)")})
def map_config():
    check_params([])
    who = principal()
    cfg = config()
    with reader().connect() as conn:
        places = map_layers.territories(conn)
        body = {
            "layers": map_layers.layers(conn, who),
            "territories": places,
            "home": map_layers.home(who, places),
            "basemaps": {
                "offline": {"tiles": "/tiles/WebMercatorQuad/{z}/{y}/{x}", "max_zoom": 22},
                "online": ({"url": cfg.basemap_url, "attribution": cfg.basemap_attribution,
                            "max_zoom": cfg.basemap_max_zoom} if cfg.basemap_url else None),
            },
        }
    return json_response(body, headers=NO_STORE)
