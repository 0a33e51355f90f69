"""Map reports over HTTP: `GET /reports/{oktmo}.html`, built for the caller's principal (anonymous: public tier)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app

from geoserver_app.auth import principal
from geoserver_app.ogc import check_params, engine, single
from geoserver_app.openapi import api, query
from geoserver_app.openapi import json_response as doc_response
from geoserver_app.reports.build import LANGS, build_report
from layers.errors import InvalidParameterValue, NotFound

blueprint = Blueprint("reports", __name__)
TAGS = ("Reports",)


def _flag(name: str) -> bool:
    raw = single(name)
    if raw in (None, "", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise InvalidParameterValue(f"{name} must be 0 or 1, got '{raw}'")


def _csp(basemap: str | None) -> str:
    """The report needs nothing from the network: inline code only, images as data URIs (and base map tiles)."""
    img = "data:"
    if basemap:
        parts = urlsplit(basemap)
        host = "*." + parts.netloc[4:] if parts.netloc.startswith("{s}.") else parts.netloc  # tile subdomains
        img += f" {parts.scheme}://{host}"
    return (f"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src {img}; "
            "frame-ancestors 'none'")


@api.route(blueprint, "/reports/<oktmo>.html", summary="A territory's map report: one standalone HTML page (indicator "
           "choropleths, provision deficits, facilities, the fuel and energy balance) for the caller's access rights",
           tags=TAGS, parameters=[
               query("year", "Year of the indicator values (default: the latest)", {"type": "integer"}),
               query("lang", "Language of the report", {"type": "string", "enum": list(LANGS)}),
               query("download", "1: as an attachment", {"type": "string", "enum": ["0", "1"]}),
               query("basemap", "1: with the online base map of CDT_BASEMAP_URL (the page then needs the network)",
                     {"type": "string", "enum": ["0", "1"]})],
           responses={"200": doc_response("The report", ("text/html",))})
def report(oktmo: str):
    check_params(["year", "lang", "download", "basemap"])
    if not oktmo.isascii() or not oktmo.isdigit() or len(oktmo) not in (8, 11):
        raise NotFound(f"no territory with OKTMO '{oktmo}'")
    raw = single("year")
    if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) == 4):
        raise InvalidParameterValue(f"year must be a four-digit year, got '{raw}'")
    lang = single("lang") or "ru"
    if lang not in LANGS:
        raise InvalidParameterValue(f"lang must be one of {', '.join(LANGS)}, got '{lang}'")
    download, config = _flag("download"), current_app.config["CDT"]
    basemap = config.basemap_url if _flag("basemap") else None
    if _flag("basemap") and not basemap:
        raise InvalidParameterValue("no base map is configured (CDT_BASEMAP_URL)")
    page = build_report(engine(), principal(), oktmo, int(raw) if raw else None, lang=lang, tiles_url=basemap,
                        tiles_attribution=config.basemap_attribution or None)
    headers = {"Content-Security-Policy": _csp(basemap), "Cache-Control": "private, no-store"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="report-{oktmo}-{lang}.html"'
    return Response(page, mimetype="text/html", headers=headers)
