"""The Flask app factory: thin handlers that parse, call a service and encode."""

from __future__ import annotations

from flask import Flask, jsonify, request
from sqlalchemy.exc import DataError, DBAPIError
from werkzeug.exceptions import HTTPException

from geoserver_app.config import Config
from layers.errors import CDTError


def create_app(config: Config | None = None, database_url: str | None = None) -> Flask:
    config = config or Config.from_env()
    from geoserver_app.config import PROJECT_ROOT

    # The map client's files (web/, with its npm packages) under /web/: Flask's static route, conditional GETs.
    app = Flask(__name__, static_folder=str(PROJECT_ROOT / "web"), static_url_path="/web")
    app.config["CDT"] = config
    # A request body above this is refused (413) before anything reads it.
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.config.update(SECRET_KEY=config.session_key(), SESSION_COOKIE_NAME="cdt_session",
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=config.cookie_secure, PERMANENT_SESSION_LIFETIME=8 * 3600)
    if database_url is None:
        from geoserver_app.embedded_pg import database_url as resolve

        database_url = resolve(config)
    from layers.db import engine_for, reader

    app.extensions["cdt_engine"] = engine_for(database_url, config.statement_timeout_ms, pre_ping=False)
    app.extensions["cdt_reader"] = reader(app.extensions["cdt_engine"])

    from geoserver_app import landing

    app.register_blueprint(landing.blueprint)
    from geoserver_app import features_api

    app.register_blueprint(features_api.blueprint)
    from geoserver_app import tiles_api
    app.register_blueprint(tiles_api.blueprint)
    _register_errors(app)
    from geoserver_app import audit_api, auth, energy_api, hardening, planning_api, processes_api, search_api, web

    app.register_blueprint(audit_api.blueprint)
    app.register_blueprint(search_api.blueprint)
    app.register_blueprint(web.blueprint)
    app.register_blueprint(processes_api.blueprint)
    app.register_blueprint(energy_api.blueprint)
    app.register_blueprint(planning_api.blueprint)
    app.register_blueprint(auth.blueprint)
    from geoserver_app import bulk_api

    app.register_blueprint(bulk_api.blueprint)
    from geoserver_app.bot.http import blueprint as telegram_blueprint

    app.register_blueprint(telegram_blueprint)
    from geoserver_app import exports_api

    app.register_blueprint(exports_api.blueprint)
    from geoserver_app.reports.http import blueprint as reports_blueprint

    app.register_blueprint(reports_blueprint)

    auth.install(app)
    hardening.install(app)
    if config.proxy_count:
        # Audit addresses and login throttling must see the client, not the proxy.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.proxy_count, x_proto=config.proxy_count,
                                x_host=config.proxy_count)
    return app


def wants_json() -> bool:
    fmt = request.args.get("f")
    if fmt:
        return fmt.lower() in ("json", "application/json")
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _register_errors(app: Flask) -> None:
    """Every error leaves as OGC-style exception JSON: {"code", "description"}."""

    @app.errorhandler(CDTError)
    def cdt_error(exc: CDTError):
        return jsonify(exc.to_json()), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = {404: "NotFound", 405: "MethodNotAllowed", 400: "InvalidParameterValue",
                413: "PayloadTooLarge"}.get(exc.code or 500, exc.name.replace(" ", ""))
        return jsonify({"code": code, "description": exc.description}), exc.code

    @app.errorhandler(DBAPIError)
    def database_error(exc: DBAPIError):
        # Input that reaches PostgreSQL and is refused there (a data exception, SQLSTATE class 22) is the
        # client's error; a statement that ran past the timeout (57014) is the server protecting itself.
        state = getattr(exc.orig, "sqlstate", None) or ""
        message = (getattr(getattr(exc.orig, "diag", None), "message_primary", None)
                   or (str(exc.orig).splitlines() or ["invalid value"])[0])
        # psycopg refuses some values itself, before sending them (a NUL in text): a DataError without SQLSTATE.
        if state.startswith("22") or (not state and isinstance(exc, DataError)):
            return jsonify({"code": "InvalidParameterValue", "description": message}), 400
        # PROJ cannot move the client's coordinates (bbox, filter literal) out of their CRS's domain.
        if state == "XX000" and message.startswith("transform:"):
            return jsonify({"code": "InvalidParameterValue",
                            "description": f"coordinates outside the area of their CRS ({message})"}), 400
        if state == "57014":
            return jsonify({"code": "ServiceUnavailable",
                            "description": "the query ran longer than the statement timeout; narrow it "
                                           "(bbox, filter, limit)"}), 503
        app.logger.exception("database error")
        return jsonify({"code": "ServerError", "description": "internal error; see the server log"}), 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return jsonify({"code": "ServerError", "description": "internal error; see the server log"}), 500
