"""Shared pieces of the OGC API handlers: engine access, format negotiation, links, encoding."""

from __future__ import annotations

import json
from collections.abc import Iterable

import orjson
from flask import Response, current_app, request
from sqlalchemy import Engine

from layers.errors import InvalidParameterValue

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"

FORMATS = {"json": JSON, "geojson": GEOJSON, "html": HTML, "application/json": JSON, "application/geo+json": GEOJSON,
           "text/html": HTML}


def engine() -> Engine:
    """For writes (`layers.db.transaction`)."""
    return current_app.extensions["cdt_engine"]


def reader() -> Engine:
    """For reads: autocommit, each statement its own consistent snapshot."""
    return current_app.extensions["cdt_reader"]


def config():
    return current_app.config["CDT"]


def base_url() -> str:
    return request.url_root.rstrip("/")


def negotiate(data_type: str = JSON) -> str:
    """The media type to answer with: `f=` wins, then the Accept header; JSON by default."""
    fmt = request.args.get("f")
    if fmt:
        chosen = FORMATS.get(fmt.lower())
        if chosen is None:
            raise InvalidParameterValue(f"f={fmt} is not offered; use json or html")
        return data_type if chosen in (JSON, GEOJSON) else chosen
    best = request.accept_mimetypes.best_match([data_type, JSON, GEOJSON, HTML], default=data_type)
    return HTML if best == HTML and request.accept_mimetypes[HTML] > request.accept_mimetypes[JSON] else data_type


def check_params(allowed: Iterable[str], extra: Iterable[str] = ()) -> None:
    """Unknown query parameters are an error (OGC API Features /req/core/query-param-unknown)."""
    known = set(allowed) | set(extra)
    unknown = [k for k in request.args if k not in known]
    if unknown:
        raise InvalidParameterValue(f"unknown query parameter(s): {', '.join(sorted(unknown))}; "
                                    f"this operation takes: {', '.join(sorted(known))}")


def single(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise InvalidParameterValue(f"parameter {name} is given {len(values)} times")
    return values[0] if values else None


def link(href: str, rel: str, type_: str, title: str | None = None, **extra) -> dict:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    out.update(extra)
    return out


def self_links(path: str, data_type: str = JSON, html: bool = True) -> list[dict]:
    """self and alternate links of a resource, for JSON and HTML."""
    url = base_url() + path
    out = [link(f"{url}?f=json" if data_type == JSON else f"{url}?f=geojson" if data_type == GEOJSON else url,
                "self", data_type, "This document")]
    if html:
        out.append(link(f"{url}?f=html", "alternate", HTML, "This document as HTML"))
    return out


def json_response(body: object, status: int = 200, media_type: str = JSON, headers: dict | None = None) -> Response:
    try:
        data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: jsonb reads a number such as 1e20 back as an int
        data = json.dumps(body, ensure_ascii=False,
                          default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o)).encode()
    return Response(data, status=status, mimetype=media_type, headers=headers)


def not_modified_or(resp: Response) -> Response:
    """Answer 304 when the client's If-None-Match already names this ETag."""
    etag = resp.headers.get("ETag")
    if etag and etag in [e.strip() for e in request.headers.get("If-None-Match", "").split(",")]:
        return Response(status=304, headers={"ETag": etag, "Cache-Control": resp.headers.get("Cache-Control", "")})
    return resp
