"""Security headers and CORS on every response, added as plain header tuples in a WSGI wrapper (cheaper than
per-response header lookups: this runs on every tile and feature).

CORS is open (any origin, GET/HEAD/OPTIONS, no credentials) for reading public collections, tiles and the
API description, so browser GIS clients on other sites can use the public tier; everything else (writes,
non-public layers, accounts) is same-origin only.
"""

from __future__ import annotations

from flask import Flask

from layers import registry

SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]
# HTML pages of the API use inline styles only; the map client (web/) sets its own policy.
HTML_CSP = ("Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
CORS_READ = [("Access-Control-Allow-Origin", "*"),
             ("Access-Control-Expose-Headers", "ETag, Content-Crs, Link, Location")]
CORS_PREFLIGHT = [("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
                  ("Access-Control-Allow-Headers", "Accept, If-None-Match, Content-Type"),
                  ("Access-Control-Max-Age", "3600")]
NON_PUBLIC = {layer.name for layer in registry.all_layers() if layer.access != "public"}
PRIVATE_PREFIXES = ("/auth", "/login", "/logout", "/audit", "/admin", "/jobs")


def public_read(path: str, method: str) -> bool:
    if method not in ("GET", "HEAD", "OPTIONS") or path.startswith(PRIVATE_PREFIXES):
        return False
    parts = path.strip("/").split("/")
    if parts[:2] == ["exports", "collections"]:  # an export of a collection is as public as the collection
        parts = parts[1:]
    return not (len(parts) >= 2 and parts[0] == "collections" and parts[1] in NON_PUBLIC)


class SecurityHeaders:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        cors = public_read(environ.get("PATH_INFO", "/"), method)
        preflight = cors and method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        secure = environ.get("wsgi.url_scheme") == "https"
        credentials = "HTTP_AUTHORIZATION" in environ or "HTTP_COOKIE" in environ

        def add_headers(status, headers, exc_info=None):
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in SECURITY_HEADERS if h[0].lower() not in present)
            if "content-security-policy" not in present and any(
                    n.lower() == "content-type" and v.startswith("text/html") for n, v in headers):
                headers.append(HTML_CSP)
            if secure:
                headers.append(("Strict-Transport-Security", "max-age=31536000"))
            if credentials:
                headers.append(("Vary", "Authorization, Cookie"))
            if cors:
                headers.extend(CORS_READ)
                if preflight:
                    headers.extend(CORS_PREFLIGHT)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, add_headers)


def install(app: Flask) -> None:
    app.wsgi_app = SecurityHeaders(app.wsgi_app)
