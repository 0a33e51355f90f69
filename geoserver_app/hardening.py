"""Security headers and CORS on every response.

CORS is open (any origin, GET/HEAD/OPTIONS, no credentials) for reading public collections, tiles and the
API description, so browser GIS clients on other sites can use the public tier; everything else (writes,
non-public layers, accounts) is same-origin only.
"""

from __future__ import annotations

from flask import Flask, Response, request

from layers import registry

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# HTML pages of the API use inline styles only; the map client (web/) brings its own files from this origin.
HTML_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
NON_PUBLIC = {layer.name for layer in registry.all_layers() if layer.access != "public"}
PRIVATE_PREFIXES = ("/auth", "/login", "/logout", "/audit", "/admin")


def public_read(path: str, method: str) -> bool:
    if method not in ("GET", "HEAD", "OPTIONS") or path.startswith(PRIVATE_PREFIXES):
        return False
    parts = path.strip("/").split("/")
    return not (len(parts) >= 2 and parts[0] == "collections" and parts[1] in NON_PUBLIC)


def install(app: Flask) -> None:
    @app.after_request
    def headers(resp: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        if resp.mimetype == "text/html":
            resp.headers.setdefault("Content-Security-Policy", HTML_CSP)
        if request.is_secure:
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if "Authorization" in request.headers or "Cookie" in request.headers:
            resp.headers.add("Vary", "Authorization, Cookie")
        if public_read(request.path, request.method):
            resp.headers["Access-Control-Allow-Origin"] = "*"
            resp.headers["Access-Control-Expose-Headers"] = "ETag, Content-Crs, Link, Location"
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                resp.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
                resp.headers["Access-Control-Allow-Headers"] = "Accept, If-None-Match, Content-Type"
                resp.headers["Access-Control-Max-Age"] = "3600"
        return resp
